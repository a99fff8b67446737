"""Stage 1 with transformers: tiny random-weight chat models loaded through the real from_pretrained path."""

import numpy as np
import pytest
from datasets import Dataset, Features, Image as ImageFeature, Value

from tiny_chat_models import save_tiny_idefics3, save_tiny_lm, save_tiny_vlm
from u2s_datasets.samples import sample_images
from u2s_datasets import Unsafe2Safe, resolve_config
from u2s_datasets.inspect.vlm import TransformersInspector
from u2s_datasets.instruct.llm import InstructionError, SameModelInstructor, TransformersInstructor
from u2s_datasets.models.chat import ModelNotFoundError, TransformersChat, user_message
from u2s_datasets.records import Inspection, ReviewItem


@pytest.fixture(scope="session")
def vlm_dir(tmp_path_factory):
    return save_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))


@pytest.fixture(scope="session")
def idefics3_dir(tmp_path_factory):
    return save_tiny_idefics3(tmp_path_factory.mktemp("tiny-idefics3"))


@pytest.fixture(scope="session")
def lm_dir(tmp_path_factory):
    return save_tiny_lm(tmp_path_factory.mktemp("tiny-lm"))


@pytest.fixture(scope="module")
def photos():
    images = sample_images()
    return [images[name] for name in ("astronaut", "coffee", "grace_hopper", "chelsea")]


from u2s_datasets.models.devices import resolve_device


def _config(vlm_dir, lm_dir, **overrides):
    return resolve_config("paper", vlm_model=vlm_dir, llm_model=lm_dir, local_files_only=True, **overrides)


def test_gibberish_vlm_fails_closed_through_ds_map(vlm_dir, lm_dir, photos):
    features = Features({"image": ImageFeature(), "label": Value("string")})
    ds = Dataset.from_dict({"image": photos, "label": ["person", "cup", "person", "cat"]}, features=features)
    transform = Unsafe2Safe(preset="paper", class_column="label", vlm_model=vlm_dir, llm_model=lm_dir, editor="blur",
                            max_new_tokens=40, local_files_only=True)
    out = ds.map(transform, batched=True, batch_size=4)

    assert len(out) == len(photos)
    for row, original in zip(out, photos):
        assert row["is_private"] is True
        assert row["u2s_status"].startswith("error: inspection"), row["u2s_status"]
        assert "repair" in row["u2s_status"]
        assert row["edit_instruction"] == "" and row["public_caption"] == "" and row["privacy_regions"] == []
        safe = np.asarray(row["safe_image"].convert("RGB"))
        assert safe.shape[:2] == (original.height, original.width)
        # Fully redacted: one flat colour, none of the photo left.
        assert safe.std() == 0
        assert np.abs(safe.astype(int) - np.asarray(original).astype(int)).mean() > 20


def test_each_unusable_answer_gets_one_repair_request(vlm_dir, lm_dir, photos):
    inspector = TransformersInspector(_config(vlm_dir, lm_dir, max_new_tokens=24))
    calls = []
    generate = inspector.chat.generate

    def recording(conversations, max_new_tokens):
        calls.append(conversations)
        return generate(conversations, max_new_tokens)

    inspector.chat.generate = recording
    results = inspector.inspect(photos[:2], ["cup", None])

    assert len(calls) == 2 and len(calls[0]) == 2 and len(calls[1]) == 2
    system, first = calls[0][0]
    assert system["role"] == "system" and "private" in system["content"][-1]["text"]
    first_prompt = first["content"][-1]["text"]
    assert 'class "cup"' in first_prompt and "people_faces" in first_prompt
    repair = calls[1][0]
    assert [m["role"] for m in repair] == ["system", "user", "assistant", "user"]
    assert "could not be used" in repair[-1]["content"][-1]["text"]
    for result in results:
        assert result.is_private is True and result.error.startswith("inspection answer unusable after one repair request")


@pytest.mark.parametrize("architecture", ["llava", "idefics3"])
def test_batched_left_padded_generation_matches_one_by_one(vlm_dir, idefics3_dir, lm_dir, photos, architecture):
    folder = {"llava": vlm_dir, "idefics3": idefics3_dir}[architecture]
    # float32 on every device: batched and one-by-one greedy answers are then equal on GPUs too
    # (in bf16, padding changes the rounding and may flip a token).
    chat = TransformersChat.load(folder, None, _config(folder, lm_dir, dtype="float32").model, vision=True, batch_size=3)
    assert chat.device == resolve_device(None, None) and chat.tokenizer.padding_side == "left"
    assert str(chat.model.dtype) == "torch.float32"
    conversations = [[user_message("short", photos[0])], [user_message("a much longer question " * 6, photos[1])],
                     [user_message("text only, no image")]]
    together = chat.generate(conversations, 12)
    alone = [chat.generate([c], 12)[0] for c in conversations]
    assert together == alone
    assert all(len(answer) > 0 for answer in together)


@pytest.mark.parametrize("option", [{"cpu_offload": True}, {"device_map": "auto"}])
def test_small_gpu_loading_options_give_the_same_answers(vlm_dir, lm_dir, photos, option):
    plain = TransformersChat.load(vlm_dir, None, _config(vlm_dir, lm_dir).model, vision=True)
    other = TransformersChat.load(vlm_dir, None, _config(vlm_dir, lm_dir, **option).model, vision=True)
    conversation = [[user_message("Describe the photo.", photos[0])]]
    assert other.generate(conversation, 10) == plain.generate(conversation, 10)


def test_missing_model_names_it_and_says_how_to_get_it(vlm_dir, lm_dir, photos, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelNotFoundError) as excinfo:
        TransformersInspector(resolve_config("paper", vlm_model="no-such-org/no-such-vlm", vlm_revision="main"))
    message = str(excinfo.value)
    assert "no-such-org/no-such-vlm" in message and "hf download no-such-org/no-such-vlm --revision main" in message

    transform = Unsafe2Safe(preset="paper", vlm_model=vlm_dir, llm_model="/nonexistent/folder/of/llm", editor="blur")
    with pytest.raises(ModelNotFoundError, match="/nonexistent/folder/of/llm"):
        transform({"image": photos[:1]})


def test_instructor_reuses_the_inspector_model_when_asked(vlm_dir, lm_dir):
    inspector = TransformersInspector(_config(vlm_dir, lm_dir))
    same = SameModelInstructor(_config(vlm_dir, lm_dir, instructor="same"), inspector=inspector)
    assert same.chat is inspector.chat
    # Naming the VLM as the LLM also keeps one model in memory.
    named = TransformersInstructor(_config(vlm_dir, vlm_dir), inspector=inspector)
    assert named.chat is inspector.chat
    separate = TransformersInstructor(_config(vlm_dir, lm_dir), inspector=inspector)
    assert separate.chat is not inspector.chat and separate.chat.vision is False


def test_same_instructor_needs_a_model_backed_inspector():
    from u2s_datasets.inspect.local import DetectorInspector

    config = resolve_config("local", instructor="same")
    with pytest.raises(ValueError, match="instructor='same'"):
        SameModelInstructor(config, inspector=DetectorInspector(config))


def test_gibberish_llm_instruction_fails_the_row_not_the_batch(vlm_dir, lm_dir):
    instructor = TransformersInstructor(_config(vlm_dir, lm_dir, instruct_max_new_tokens=24))
    inspections = [
        Inspection(True, ["people_faces"], "A man in a suit.", "A person in a suit.",
                   review=[ReviewItem("face", "identifies him", "people_faces")]),
        Inspection(True, ["text_symbols"], "A sign reading EXIT.", "A blank sign."),
    ]
    results = instructor.instruct(inspections)
    assert len(results) == 2
    assert all(isinstance(r, InstructionError) and "after one repair request" in str(r) for r in results)
