"""Reading stage-1 model answers: a corpus of realistic replies, each with the record it must give or the reason it fails."""

import pytest

from u2s_datasets import prompts
from u2s_datasets.inspect.parsing import AnswerError, category_id, parse_inspection, parse_instruction, to_pixel_box
from u2s_datasets.records import Inspection, ReviewItem
from u2s_datasets.taxonomy import CATEGORY_IDS

SIZE = (1000, 500)  # width, height of the original image

CLEAN = (
    '{"is_private": true, "categories": ["people_faces", "text_symbols"], "review": ['
    '{"item": "woman\'s face", "reason": "identifies her", "category": "people_faces", "box": [100, 200, 300, 600]},'
    '{"item": "name badge", "reason": "shows her name", "category": "text_symbols", "box": [400, 400, 600, 600]}],'
    '"private_caption": "A woman with a badge reading Anna Meyer stands at desk 12 in 1999.",'
    '"public_caption": "A person with a plain badge stands at a desk."}'
)

# (name, answer, expected fields or the AnswerError text)
CORPUS = [
    ("clean json", CLEAN, dict(is_private=True, categories=["people_faces", "text_symbols"],
                               public_caption="A person with a plain badge stands at a desk.",
                               regions=[(100, 100, 300, 300), (400, 200, 600, 300)])),
    ("fenced with chatter",
     'Sure! Here is the analysis:\n```json\n{"is_private": false, "categories": [], "review": [],\n'
     '"private_caption": "A cup of coffee on a saucer.", "public_caption": "A cup of coffee on a saucer.",}\n```\nLet me know!',
     dict(is_private=False, categories=[], public_caption="A cup of coffee on a saucer.", regions=[])),
    ("wordy, object in the middle",
     'I looked at the image carefully. {"is_private": "yes", "categories": "Text and symbols, 5",'
     ' "review": ["street sign: names the street (locations_timestamps)"],'
     ' "private_caption": "A street sign reading Elm Street.", "public_caption": "A blank street sign."} That is all.',
     dict(is_private=True, categories=["text_symbols", "locations_timestamps"], public_caption="A blank street sign.")),
    ("python quoting",
     "{'is_private': True, 'categories': ['People and faces'], 'review': [], 'private_caption': 'A man smiling.',"
     " 'public_caption': 'A person smiling.', 'extra': None}",
     dict(is_private=True, categories=["people_faces"], public_caption="A person smiling.")),
    ("section style",
     "**Is private:** Yes\n**Categories:** people_faces, text_symbols\n**Review:**\n"
     "- Face of the woman: identifies her (people_faces)\n- Badge: shows her name (text_symbols)\n"
     "**Private caption:** A woman with a badge reading NASA.\n**Public caption:** A person with a plain badge.",
     dict(is_private=True, categories=["people_faces", "text_symbols"], public_caption="A person with a plain badge.")),
    ("numbered sections, not private",
     "1. Private: no\n2. Categories: none\n3. Private caption: A red apple on a wooden table.\n"
     "4. Public caption: A red apple on a wooden table.",
     dict(is_private=False, categories=[], public_caption="A red apple on a wooden table.")),
    ("cut off after the captions",
     '{"is_private": true, "categories": ["people_faces"], "private_caption": "An astronaut.", "public_caption": "A person in a suit."',
     dict(is_private=True, categories=["people_faces"], public_caption="A person in a suit.")),
    ("cut off inside the public caption",
     '{"is_private": true, "categories": ["people_faces"], "private_caption": "An astronaut.", "public_caption": "A person in fr',
     '"public_caption" is missing'),
    ("cut off inside the review", '{"is_private": true, "review": [{"item": "face", "reas', '"private_caption" is missing'),
    ("empty", "", "the answer is empty"),
    ("whitespace", "  \n ", "the answer is empty"),
    ("random tokens", "RP9Q3=v]mE'<arP9Q3=v]mE'<ar", "no JSON object"),
    ("refusal", "I'm sorry, I can't help with that.", "no JSON object"),
    ("broken json", '{"is_private": true, "private_caption": "A man" "public_caption": }', "malformed"),
    ("verdict of the wrong type", '{"is_private": [1, 2], "private_caption": "A dog.", "public_caption": "A dog."}', '"is_private" must be'),
    ("caption of the wrong type", '{"is_private": true, "private_caption": 42, "public_caption": "A cat."}', '"private_caption" must be a string'),
    ("review of the wrong type", '{"is_private": true, "review": 7, "private_caption": "A cat.", "public_caption": "A cat."}', '"review" must be a list'),
    ("categories of the wrong type", '{"is_private": true, "categories": {"a": 1}, "private_caption": "A cat.", "public_caption": "A cat."}', '"categories" must be'),
    ("private without public caption", '{"is_private": true, "private_caption": "A man."}', '"public_caption" is missing'),
    ("token soup caption", '{"is_private": false, "private_caption": "]]]%%$#@!!", "public_caption": "x"}', "not readable text"),
    ("a list, not an object", '["is_private", true]', "no JSON object"),
]


@pytest.mark.parametrize("name,answer,expected", CORPUS, ids=[c[0] for c in CORPUS])
def test_corpus(name, answer, expected):
    if isinstance(expected, str):
        with pytest.raises(AnswerError, match=expected.replace('"', '.')):
            parse_inspection(answer, SIZE)
        return
    inspection = parse_inspection(answer, SIZE)
    assert isinstance(inspection, Inspection) and inspection.error is None
    for key, value in expected.items():
        if key == "regions":
            assert [r.box for r in inspection.regions] == value
        else:
            assert getattr(inspection, key) == value, key
    assert inspection.private_caption


@pytest.mark.parametrize("verdict", ['"unsure"', '"maybe"', '"possibly private"', "null", '"none"', '"None"'])
def test_uncertain_verdict_reads_as_private(verdict):
    answer = f'{{"is_private": {verdict}, "private_caption": "A street.", "public_caption": "A street."}}'
    assert parse_inspection(answer, SIZE).is_private is True


def test_not_private_with_findings_reads_as_private():
    answer = ('{"is_private": false, "categories": ["health_indicators"], "review": [{"item": "wheelchair", '
              '"reason": "medical condition", "category": "health_indicators"}], '
              '"private_caption": "A man in a wheelchair.", "public_caption": "A man on a chair."}')
    inspection = parse_inspection(answer, SIZE)
    assert inspection.is_private is True and inspection.categories == ["health_indicators"]
    assert inspection.review == [ReviewItem("wheelchair", "medical condition", "health_indicators")]


def test_not_private_copies_the_caption_and_drops_findings():
    inspection = parse_inspection('{"is_private": false, "private_caption": "Two apples."}', SIZE)
    assert (inspection.is_private, inspection.public_caption, inspection.categories) == (False, "Two apples.", [])


def test_limits_are_enforced_by_truncation():
    long = " ".join(["word"] * 80)
    review = ", ".join(f'{{"item": "thing {i}", "reason": "r", "category": "private_belongings"}}' for i in range(8))
    answer = f'{{"is_private": true, "review": [{review}], "private_caption": "{long}", "public_caption": "{long}"}}'
    inspection = parse_inspection(answer, SIZE)
    assert len(inspection.private_caption.split()) == prompts.MAX_CAPTION_WORDS
    assert len(inspection.public_caption.split()) == prompts.MAX_CAPTION_WORDS
    assert len(inspection.review) == prompts.MAX_REVIEW_ITEMS


def test_unknown_categories_are_dropped_and_close_ones_mapped():
    answer = ('{"is_private": true, "categories": ["weather", "Faces", "4", "religious symbols", "private_belongings", "faces"],'
              ' "private_caption": "A man.", "public_caption": "A person."}')
    assert parse_inspection(answer, SIZE).categories == ["people_faces", "text_symbols", "cultural_political_religious", "private_belongings"]
    assert [category_id(i) for i in range(1, 10)] == list(CATEGORY_IDS)
    assert category_id("sky") is None and category_id(True) is None


def test_boxes_become_pixel_regions():
    assert to_pixel_box([0, 0, 1000, 1000], SIZE) == (0, 0, 1000, 500)
    assert to_pixel_box([0.1, 0.2, 0.5, 0.6], SIZE) == (100, 100, 500, 300)  # 0-1 fractions
    assert to_pixel_box([50, 25, 100, 50], SIZE, "pixels", sent_size=(500, 250)) == (100, 50, 200, 100)
    assert to_pixel_box([300, 600, 100, 200], SIZE) == (100, 100, 300, 300)  # corners in either order
    assert to_pixel_box([-50, -50, 2000, 2000], SIZE) == (0, 0, 1000, 500)  # clipped to the image
    assert to_pixel_box([10, 10, 10, 50], SIZE) is None  # empty
    assert to_pixel_box(["a", 1, 2, 3], SIZE) is None and to_pixel_box([1, 2, 3], SIZE) is None
    with pytest.raises(ValueError):
        to_pixel_box([0, 0, 1, 1], SIZE, "inches")


def test_instruction_answers():
    good = parse_instruction('```json\n{"instruction": "Replace the face with a generic one and blank the badge.",'
                             ' "target_caption": "A person with a blank badge."}\n```')
    assert good.instruction == "Replace the face with a generic one and blank the badge."
    assert good.target_caption == "A person with a blank badge."
    sections = parse_instruction("Edit instruction: Make the sign unreadable.\nTarget caption: A blank sign.")
    assert (sections.instruction, sections.target_caption) == ("Make the sign unreadable.", "A blank sign.")
    fallback = parse_instruction('{"instruction": "Blur the plate."}', fallback_caption="A car on a road.")
    assert fallback.target_caption == "A car on a road."
    long = " ".join(["change"] * 90)
    limited = parse_instruction(f'{{"instruction": "{long}", "target_caption": "{long}"}}')
    assert len(limited.instruction.split()) == prompts.MAX_INSTRUCTION_WORDS
    assert len(limited.target_caption.split()) < prompts.MAX_TARGET_WORDS
    for bad, problem in [("", "empty"), ('{"target_caption": "A cat."}', "instruction"),
                         ('{"instruction": ["a", 1]}', "must be a string"), ("e3#@Q]]", "no JSON")]:
        with pytest.raises(AnswerError, match=problem):
            parse_instruction(bad)


def test_prompts_carry_the_taxonomy_the_class_and_the_box_rule():
    prompt = prompts.inspection_prompt("airplane", "pixels", (640, 480))
    for category in CATEGORY_IDS:
        assert category in prompt
    assert 'class "airplane"' in prompt and "640x480" in prompt
    assert "0 to 1000" in prompts.inspection_prompt(None)
    assert "belongs to the class" not in prompts.inspection_prompt(None)
    inspection = Inspection(True, ["text_symbols"], "A sign reading EXIT.", "A blank sign.",
                            review=[ReviewItem("exit sign", "readable text", "text_symbols")])
    instruct = prompts.instruction_prompt(inspection)
    assert "A blank sign." in instruct and "exit sign" in instruct and "45 words" in instruct
    # The private caption never reaches the instruction writer: it only sees what must change and the public scene.
    assert "EXIT" not in instruct


def _private_answer(review: str, tail: str = '"public_caption": "A person."}') -> str:
    return f'{{"is_private": true, "review": [{review}], "private_caption": "A man.", {tail}'


FACE = '{"item": "face", "category": "people_faces", "box": [100, 200, 300, 600]}'


@pytest.mark.parametrize("other", [
    '{"item": "name badge", "category": "text_symbols"}',  # no box at all
    '{"item": "name badge", "box": "top left"}',  # not four numbers
    '{"item": "name badge", "box": "[500, 500, 600"}',  # a broken list in a string
    '{"item": "name badge", "box": [500, 500, 500, 600]}',  # empty
], ids=["no box", "words", "broken string", "empty box"])
def test_a_finding_without_a_usable_box_leaves_the_regions_unknown(other):
    # Regions that cover only some findings would leave the others unedited: the whole image is edited instead.
    inspection = parse_inspection(_private_answer(f"{FACE}, {other}"), SIZE)
    assert inspection.is_private and len(inspection.review) == 2
    assert inspection.regions == []


def test_a_box_written_as_a_string_is_read():
    inspection = parse_inspection(_private_answer(f'{FACE}, {{"item": "badge", "box": "[500,500,600,600]"}}'), SIZE)
    assert [r.box for r in inspection.regions] == [(100, 100, 300, 300), (500, 250, 600, 300)]


def test_findings_past_the_limit_leave_the_regions_unknown():
    boxed = ", ".join(f'{{"item": "thing {i}", "box": [{10 * i}, 0, {10 * i + 5}, 5]}}' for i in range(prompts.MAX_REVIEW_ITEMS))
    within = parse_inspection(_private_answer(boxed), SIZE)
    assert len(within.regions) == prompts.MAX_REVIEW_ITEMS
    over = parse_inspection(_private_answer(boxed + ', {"item": "house number", "box": [900, 0, 950, 50]}'), SIZE)
    assert len(over.review) == prompts.MAX_REVIEW_ITEMS and over.regions == []


def test_a_cut_off_answer_leaves_the_regions_unknown():
    complete = parse_inspection(_private_answer(FACE), SIZE)
    assert [r.box for r in complete.regions] == [(100, 100, 300, 300)]
    # Cut off by the token limit after the captions: later findings may be missing.
    cut = parse_inspection(_private_answer(FACE, '"public_caption": "A person.", "review_more": [{"item": "tatt'), SIZE)
    assert cut.is_private and cut.public_caption == "A person." and cut.regions == []


@pytest.mark.parametrize("key", ["label", "name", "description", "text"])
def test_findings_named_by_other_keys_count(key):
    answer = (f'{{"is_private": false, "review": [{{"{key}": "face", "category": "people_faces", "box": [100, 200, 300, 600]}}],'
              ' "private_caption": "A man.", "public_caption": "A person."}')
    inspection = parse_inspection(answer, SIZE)
    assert inspection.is_private is True and inspection.categories == ["people_faces"]
    assert inspection.review[0].item == "face" and [r.box for r in inspection.regions] == [(100, 100, 300, 300)]


@pytest.mark.parametrize("entry", ['{"category": "health_indicators"}', '{"box": [100, 200, 300, 600]}'])
def test_an_unnamed_finding_with_a_box_or_category_counts(entry):
    answer = f'{{"is_private": false, "review": [{entry}], "private_caption": "A man.", "public_caption": "A person."}}'
    assert parse_inspection(answer, SIZE).is_private is True
