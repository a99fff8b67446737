"""Stage 1 as published: the paper's prompts, its models' architecture, the flagging pass, the target caption."""

import json

import numpy as np
import pytest
from datasets import Dataset
from test_stage1_openai import ASTRONAUT_ANSWER, COFFEE_ANSWER, INSTRUCTION, PHOTOS, ChatServer, _text_of, good_reply
from tiny_chat_models import save_tiny_internvl

from u2s_datasets import Unsafe2Safe, prompts, resolve_config
from u2s_datasets.columns import OUTPUT_FEATURES, TARGET_CAPTION, base_status
from u2s_datasets.inspect.parsing import AnswerError, parse_flag, parse_inspection
from u2s_datasets.models.chat import TransformersChat, _apply_template, user_message
from u2s_datasets.taxonomy import CATEGORY_IDS


def test_paper_preset_names_the_papers_models():
    config = resolve_config("paper")
    assert config.inspect.vlm_model == "OpenGVLab/InternVL2_5-8B"
    assert config.instruct.llm_model == "Qwen/Qwen3-4B-Instruct-2507"
    assert config.edit.editor == "ip2p" and config.edit.editor_model == "vinesmsuic/magicbrush-jul7"
    assert config.edit.edit_scope == "global"
    assert "qwen2.5-vl" not in json.dumps(config.to_dict()).lower()  # needs torchvision in this install


def test_prompts_render_with_and_without_a_class():
    with_class = prompts.inspection_prompt("airplane")
    without = prompts.inspection_prompt(None)
    assert 'class "airplane"' in with_class and "centred on the airplane" in with_class
    assert "pose, size and position" in with_class and "pose, size and position" not in without
    assert "centred on its main subject" in without
    for prompt in (with_class, without, prompts.flag_prompt("dog"), prompts.flag_prompt(None)):
        assert all(category in prompt for category in CATEGORY_IDS)
        assert "{" not in prompt.replace("{\n", "").replace('{"', "").replace("{{", "")  # nothing left unfilled
    for example in ("reflections", "name tags", "without visible faces", "partly legible", "receipts", "classrooms",
                    "emotional expressions", "visible skin", "hobbies", "mail"):
        assert example in with_class, example
    assert "at most 5 items" in with_class and "at most 50 words" in with_class
    assert 'class "dog"' in prompts.flag_prompt("dog") and "class" not in prompts.flag_prompt(None).split("categories")[0]


def test_every_request_has_its_system_message():
    texts = {role: prompts.system_prompt(role) for role in ("inspect", "flag", "instruct")}
    assert all("private" in text and "{" not in text for text in texts.values())
    assert len(set(texts.values())) == 3


def test_instruction_prompt_carries_the_papers_rules():
    inspection = parse_inspection(json.dumps(ASTRONAUT_ANSWER), (512, 512))
    prompt = prompts.instruction_prompt(inspection)
    assert "astronaut's face" in prompt and ASTRONAUT_ANSWER["public_caption"] in prompt
    assert ASTRONAUT_ANSWER["private_caption"] not in prompt
    for rule in ("at most 45 words", "more than two things", "Keep the layout", "Mention only what changes",
                 "fewer than 50 words"):
        assert rule in prompt, rule


@pytest.mark.parametrize("answer, expected", [
    ('{"is_private": true, "categories": ["people_faces", "text_symbols"]}', (True, ["people_faces", "text_symbols"])),
    ('```json\n{"is_private": false, "categories": []}\n```', (False, [])),
    ("Is private: yes\nCategories: Text and symbols", (True, ["text_symbols"])),
    ('{"is_private": "unsure", "categories": []}', (True, [])),
    ('{"is_private": false, "categories": ["private_belongings"]}', (True, ["private_belongings"])),
])
def test_flag_answers_read_recall_first(answer, expected):
    assert parse_flag(answer) == expected


def test_unusable_flag_answer_is_an_error():
    with pytest.raises(AnswerError):
        parse_flag("I cannot help with that.")


def _flagging_reply(flags):
    def reply(body, image):
        text = _text_of(body)
        if image is not None and "deciding whether one photo" in text:
            name = next(n for n, p in PHOTOS.items() if p.size == image.size)
            return json.dumps(flags[name])
        return good_reply(body, image)
    return reply


def test_flag_pass_turns_a_missed_image_private_and_fills_the_target_caption():
    flags = {"astronaut": {"is_private": False, "categories": []},
             "coffee": {"is_private": True, "categories": ["text_symbols"]}}
    ds = Dataset.from_dict({"image": [PHOTOS["astronaut"], PHOTOS["coffee"]]})
    with ChatServer(_flagging_reply(flags)) as server:
        transform = Unsafe2Safe(preset="paper", stage1_backend="openai", openai_base_url=server.url, vlm_model="vlm",
                                llm_model="llm", editor="blur", flag_pass=True, openai_timeout=10.0)
        out = ds.map(transform, batched=True, batch_size=2, features=transform.features(ds.features))
    astronaut, coffee = out
    flag_requests = [b for b in server.requests if "deciding whether one photo" in _text_of(b)]
    assert len(flag_requests) == 2 and all(b["max_tokens"] == 128 for b in flag_requests)
    # The inspection's findings stand although the flag missed them; the flag's verdict stands although the inspection missed it.
    assert astronaut["is_private"] and base_status(astronaut["u2s_status"]) == "edited"
    assert coffee["is_private"] and coffee["privacy_categories"] == ["text_symbols"]
    assert coffee["privacy_regions"] == []  # no boxes for what the inspection did not see: the whole image is edited
    assert coffee["public_caption"] == COFFEE_ANSWER["public_caption"]
    assert not np.array_equal(np.asarray(coffee["safe_image"].convert("RGB")), np.asarray(PHOTOS["coffee"]))
    assert astronaut[TARGET_CAPTION] == INSTRUCTION["target_caption"] == coffee[TARGET_CAPTION]
    assert out.features[TARGET_CAPTION] == OUTPUT_FEATURES[TARGET_CAPTION]


def test_passthrough_rows_have_an_empty_target_caption():
    ds = Dataset.from_dict({"image": [PHOTOS["coffee"]]})
    with ChatServer(good_reply) as server:
        transform = Unsafe2Safe(preset="paper", stage1_backend="openai", openai_base_url=server.url, vlm_model="vlm",
                                llm_model="llm", editor="blur", openai_timeout=10.0)
        row = ds.map(transform, batched=True)[0]
    assert row["u2s_status"] == "passthrough" and row[TARGET_CAPTION] == ""


@pytest.fixture(scope="module")
def internvl_dir(tmp_path_factory):
    return save_tiny_internvl(tmp_path_factory.mktemp("internvl"))


def test_native_internvl_loads_without_torchvision_and_answers_in_batches(internvl_dir):
    import importlib.util

    assert importlib.util.find_spec("torchvision") is None
    chat = TransformersChat.load(internvl_dir, None, resolve_config("paper", local_files_only=True).model, batch_size=2)
    assert type(chat.model).__name__ == "InternVLForConditionalGeneration"
    images = [PHOTOS["astronaut"], PHOTOS["coffee"].resize((64, 48))]
    conversations = [[user_message("Describe the photo.", image)] for image in images]
    inputs = _apply_template(chat.processor, conversations, chat.processor_kwargs)
    assert inputs["pixel_values"].shape[0] == 2  # one tile per image, as the paper runs InternVL
    context = chat.tokenizer.convert_tokens_to_ids("<IMG_CONTEXT>")
    assert ((inputs["input_ids"] == context).sum(dim=1) == 4).all()  # image_seq_length tokens stand for each image
    together = chat.generate(conversations, 6)
    alone = [chat.generate([c], 6)[0] for c in conversations]
    assert together == alone and len(together) == 2


def test_internvl_through_the_paper_preset_fails_closed_on_gibberish(internvl_dir):
    ds = Dataset.from_dict({"image": [PHOTOS["coffee"]]})
    transform = Unsafe2Safe(preset="paper", vlm_model=internvl_dir, llm_model=internvl_dir, editor="blur",
                            max_new_tokens=20, local_files_only=True)
    row = ds.map(transform, batched=True)[0]
    assert row["is_private"] and row["u2s_status"].startswith("error: inspection answer unusable")
    assert row[TARGET_CAPTION] == ""


def test_remote_code_internvl_names_the_ways_to_run_it(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "internvl_chat", "architectures": ["InternVLChatModel"]}))
    for trusted in (False, True):  # its remote code has no chat-template path either way: it is converted
        with pytest.raises(ValueError, match="remote-code format.*u2s convert-internvl SRC DST.*stage1_backend='openai'"):
            TransformersChat.load(str(tmp_path), None, resolve_config("paper", local_files_only=True,
                                                                        trust_remote_code=trusted).model)
