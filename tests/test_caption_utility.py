"""The captioning utility: BLIP-2 (tiny, random, saved and loaded like a checkpoint) fine-tuned as LAVIS does."""

import math
import random
import shutil

import numpy as np
import pytest
import torch

from u2s_datasets.evaluation.captioning import (CaptionRecipe, Blip2CaptionTuner, caption_labels, compute_caption_utility,
                                                learning_rate_at, pre_caption, random_resized_crop)


PROMPT, CAPTIONS = "a photo of ", ("red cat", "blue dog")


def _pretrain_language_model(language_model, tokenizer, texts, steps: int = 150):
    """BLIP-2 freezes a pretrained language model: this tiny one first learns the captions' words, not which fits."""
    ids = tokenizer(texts, padding=True, return_tensors="pt")
    labels = ids["input_ids"].masked_fill(ids["attention_mask"] == 0, -100)
    labels[:, :2] = -100
    optimiser = torch.optim.AdamW(language_model.parameters(), lr=1e-2)
    for _ in range(steps):
        loss = language_model(**ids, labels=labels).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


def save_tiny_blip2(folder) -> str:
    from tiny_chat_models import char_tokenizer
    from transformers import Blip2Config, Blip2ForConditionalGeneration, Blip2Processor, OPTConfig
    from transformers.models.blip.image_processing_pil_blip import BlipImageProcessorPil

    tokenizer = char_tokenizer()
    text = OPTConfig(vocab_size=len(tokenizer), hidden_size=32, ffn_dim=64, num_hidden_layers=1, num_attention_heads=2,
                     word_embed_proj_dim=32, max_position_embeddings=256, pad_token_id=1, bos_token_id=2, eos_token_id=3)
    config = Blip2Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                           image_size=32, patch_size=8),
        qformer_config=dict(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                            intermediate_size=64, encoder_hidden_size=32),
        text_config=text.to_dict(), num_query_tokens=2, image_token_index=tokenizer.convert_tokens_to_ids("<image>"))
    torch.manual_seed(0)
    model = Blip2ForConditionalGeneration(config)
    # Behind two tokens that tell the captions apart, where BLIP-2 puts its two query tokens: the language
    # model reads its prefix, and fine-tuning has to make the image say which caption fits.
    _pretrain_language_model(model.language_model, tokenizer, [cue * 2 + PROMPT + c + "\n" for cue, c in
                                                               zip(("<|user|>", "<|system|>"), CAPTIONS)])
    model.save_pretrained(folder)
    processor = Blip2Processor(image_processor=BlipImageProcessorPil(size={"height": 32, "width": 32}),
                               tokenizer=tokenizer, num_query_tokens=2)
    processor.save_pretrained(folder)
    return str(folder)


def test_captions_are_written_as_lavis_writes_them():
    assert pre_caption("A man (left) rides a horse.  Fast!") == "a man left rides a horse fast"
    assert pre_caption(" ".join(["word"] * 60)) == " ".join(["word"] * 50)


def test_learning_rate_follows_linear_warmup_then_cosine_by_epoch():
    recipe = CaptionRecipe()
    assert learning_rate_at(recipe, 0, 0) == pytest.approx(1e-8)
    assert learning_rate_at(recipe, 0, 500) == pytest.approx(1e-8 + (1e-5 - 1e-8) * 500 / 1000)
    assert learning_rate_at(recipe, 0, 5000) == pytest.approx(1e-5)
    assert learning_rate_at(recipe, 2, 0) == pytest.approx(1e-5 * 0.5 * (1 + math.cos(math.pi * 2 / 5)))


def test_the_loss_covers_the_caption_tokens_only():
    ids = torch.tensor([[9, 9, 5, 6, 7, 8, 1], [9, 9, 5, 6, 7, 1, 1]])
    mask = torch.tensor([[1, 1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 1, 0, 0]])
    labels = caption_labels(ids, mask, torch.tensor([4, 4]))
    assert labels.tolist() == [[-100, -100, -100, -100, 7, 8, 1], [-100, -100, -100, -100, 7, -100, -100]]


def test_random_resized_crop_keeps_the_area_share():
    from PIL import Image

    image = Image.fromarray(np.arange(100 * 80 * 3, dtype=np.uint32).reshape(80, 100, 3).astype(np.uint8))
    crop = random_resized_crop(image, 24, (0.5, 1.0), random.Random(0))
    assert crop.size == (24, 24)


@pytest.fixture(scope="module")
def blip2(tmp_path_factory):
    folder = tmp_path_factory.mktemp("blip2")
    yield save_tiny_blip2(folder)
    shutil.rmtree(folder)


def _images(colour, n):
    rng = np.random.default_rng(sum(colour))
    return [np.clip(np.array(colour) + rng.integers(-10, 10, (40, 40, 3)), 0, 255).astype(np.uint8) for _ in range(n)]


RECIPE = CaptionRecipe(epochs=40, batch_size=4, learning_rate=1e-2, warmup_steps=1, image_size=32, num_beams=2,
                       min_new_tokens=1, max_new_tokens=12)
RED, BLUE = (220, 30, 30), (30, 30, 220)


def test_fine_tuning_learns_which_caption_fits_the_image(blip2):
    from transformers import Blip2ForConditionalGeneration

    tuner = Blip2CaptionTuner(blip2, recipe=RECIPE, local_files_only=True, progress=False)
    tuner.fit(_images(RED, 4) + _images(BLUE, 4), ["Red cat."] * 4 + ["blue dog"] * 4, seed=0)
    # Lower case, full stop removed, the prompt left out, stopped at the newline.
    assert tuner.caption(_images(RED, 2) + _images(BLUE, 2)) == ["red cat", "red cat", "blue dog", "blue dog"]
    frozen = Blip2ForConditionalGeneration.from_pretrained(blip2).language_model.state_dict()
    assert all(torch.equal(value, tuner.model.language_model.state_dict()[key]) for key, value in frozen.items())


def test_caption_utility_trains_on_safe_and_raw_and_scores_on_real_images(blip2):
    if shutil.which("java") is None:
        pytest.skip("the COCO caption metrics need a Java runtime")
    # Raw: red images are red cats, blue images blue dogs. Safe: the edit turned every cat blue, so the
    # safe-trained captioner calls a real red cat a blue dog; one private row without a safe version is dropped.
    raw = _images(RED, 4) + _images(BLUE, 4)
    safe = [None] + _images(BLUE, 3) + _images(BLUE, 4)
    captions = [["red cat"], ["red cat", "Red cat."], "red cat", ["red cat"]] + [["blue dog"]] * 4
    test, references = _images(RED, 1) + _images(BLUE, 1), [["red cat"], ["blue dog"]]
    result = compute_caption_utility(safe, raw, captions, test, references, model=blip2, recipe=RECIPE,
                                     local_files_only=True, progress=False, meteor=False)
    assert result["dropped_train"] == 1 and result["n_test"] == 2
    assert result["per_image"]["raw_captions"] == ["red cat", "blue dog"]
    assert result["per_image"]["safe_captions"] == ["blue dog", "blue dog"]
    # Each n-gram is in one test image of two: a two-word caption equal to its reference matches its unigrams
    # and bigram fully (cosine 1) and has no 3- or 4-grams (0), CIDEr 10 * (1 + 1 + 0 + 0) / 4; one with no
    # n-gram of its reference 0. BLEU-1 of the safe run: 2 of 4 words, no brevity penalty.
    assert result["raw_cider"] == pytest.approx(5.0) and result["safe_cider"] == pytest.approx(2.5)
    assert result["cider_ratio"] == pytest.approx(0.5) and result["safe_bleu_1"] == pytest.approx(0.5)
    with pytest.raises(ValueError, match=r"captions\[1\]"):
        compute_caption_utility(safe, raw, [["a"], []] + captions[2:], test, references, model=blip2, recipe=RECIPE,
                                local_files_only=True, progress=False)
