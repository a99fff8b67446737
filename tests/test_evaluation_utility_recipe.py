"""The paper's utility recipe (MAE's fine-tuning): RandAugment, drop path, layer-wise learning-rate decay, on a tiny ViT-MAE."""

import random

import numpy as np
import pytest
import torch
from PIL import Image

from photos import astronaut, coffee
from u2s_datasets.evaluation.augment import OPERATIONS, MAETrainTransform, RandAugment, resize_center_crop
from u2s_datasets.evaluation.finetune import MAEClassifier
from u2s_datasets.evaluation.mae_recipe import (PAPER, DropPath, mae_learning_rate, parameter_groups, prepare_paper_classifier,
                                                set_learning_rate)
from u2s_datasets.evaluation.utility import compute_utility


def _tiny_mae(folder, layers=2):
    from transformers import ViTMAEConfig, ViTMAEModel
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    torch.manual_seed(0)
    config = ViTMAEConfig(hidden_size=32, num_hidden_layers=layers, num_attention_heads=2, intermediate_size=64,
                          image_size=32, patch_size=8, mask_ratio=0.75)
    ViTMAEModel(config).save_pretrained(folder)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return str(folder)


def _classifier(folder, classes=3):
    from transformers import ViTMAEModel

    model = MAEClassifier(ViTMAEModel.from_pretrained(folder, mask_ratio=0.0), classes)
    prepare_paper_classifier(model, PAPER)
    return model


def test_randaugment_changes_images_and_is_seeded():
    image = Image.fromarray(astronaut()).resize((64, 64))
    augment = RandAugment(2, 9, 0.5)
    outputs = [np.asarray(augment(image, random.Random(seed))) for seed in range(20)]
    changed = sum(not np.array_equal(out, np.asarray(image)) for out in outputs)
    assert changed >= 10, f"only {changed} of 20 images changed"  # each of two operations applies with probability 0.5
    assert np.array_equal(np.asarray(augment(image, random.Random(3))), outputs[3]), "same seed, same image"
    assert len({out.tobytes() for out in outputs}) >= 10
    crops = MAETrainTransform(32, augment)
    first, again = crops(image, random.Random("0-1-2")), crops(image, random.Random("0-1-2"))
    assert first.size == (32, 32) and np.array_equal(np.asarray(first), np.asarray(again))
    assert not np.array_equal(np.asarray(first), np.asarray(crops(image, random.Random("0-2-2"))))
    assert resize_center_crop(Image.new("RGB", (80, 40)), 32).size == (32, 32)


def test_randaugment_operations_follow_timms_level_mapping():
    pixels = Image.fromarray(np.array([[[100, 191, 200]]], dtype=np.uint8))
    rng = random.Random(0)
    # SolarizeAdd at level 10 adds 110 below 128; PosterizeIncreasing at 5 keeps 4 - 2 = 2 bits.
    assert np.asarray(OPERATIONS["SolarizeAdd"](pixels, 10, rng, (0, 0, 0)))[0, 0].tolist() == [210, 191, 200]
    assert np.asarray(OPERATIONS["PosterizeIncreasing"](pixels, 5, rng, (0, 0, 0)))[0, 0].tolist() == [64, 128, 192]
    assert np.asarray(OPERATIONS["SolarizeIncreasing"](pixels, 5, rng, (0, 0, 0)))[0, 0].tolist() == [100, 255 - 191, 255 - 200]
    assert len(OPERATIONS) == 15


def test_drop_path_is_set_per_block_and_drops_whole_samples(tmp_path):
    model = _classifier(_tiny_mae(tmp_path / "mae", layers=4))
    rates = [layer.dropout.rate for layer in model.encoder.layers]
    assert all(isinstance(layer.dropout, DropPath) for layer in model.encoder.layers)
    assert rates == pytest.approx([0.0, 0.1 / 3, 0.2 / 3, 0.1])
    assert isinstance(model.encoder.layernorm, torch.nn.Identity) and model.encoder.embeddings.position_embeddings.requires_grad
    assert model.head.weight.std().item() < 1e-4 and not model.head.bias.any()

    drop = DropPath(0.5).train()
    out = drop(torch.ones(2000, 3, 4))
    per_sample = out.flatten(1)
    assert ((per_sample == 0).all(dim=1) | (per_sample == 2).all(dim=1)).all(), "whole samples dropped, kept ones scaled by 2"
    assert 0.4 < (per_sample[:, 0] == 0).float().mean().item() < 0.6
    assert torch.equal(drop.eval()(torch.ones(5, 3)), torch.ones(5, 3))

    pixels = torch.randn(8, 3, 32, 32)
    for layer in model.encoder.layers:
        layer.dropout.rate = 0.5
    model.train()
    assert not torch.allclose(model(pixels), model(pixels)), "training: branches dropped at random"
    model.eval()
    assert torch.equal(model(pixels), model(pixels))


def test_layer_decay_gives_the_hand_computed_rates(tmp_path):
    model = _classifier(_tiny_mae(tmp_path / "mae", layers=2))
    optimiser = torch.optim.AdamW(parameter_groups(model, PAPER), lr=PAPER.learning_rate)
    rate_of = lambda name: next(g["lr"] for g in optimiser.param_groups if name in g["names"])  # noqa: E731
    decay_of = lambda name: next(g["weight_decay"] for g in optimiser.param_groups if name in g["names"])  # noqa: E731

    set_learning_rate(optimiser, 5.0, PAPER)  # the end of the warm-up: the full rate, 5e-4
    # Two blocks: the embeddings are layer 0 (0.65 ** 3), block i is layer i + 1, the pooled norm and head layer 3 (1.0).
    expected = {"encoder.embeddings.patch_embeddings.projection.weight": 5e-4 * 0.274625,
                "encoder.embeddings.cls_token": 5e-4 * 0.274625,
                "encoder.layers.0.attention.q_proj.weight": 5e-4 * 0.4225,
                "encoder.layers.1.mlp.fc1.weight": 5e-4 * 0.65,
                "fc_norm.weight": 5e-4, "head.weight": 5e-4}
    for name, rate in expected.items():
        assert rate_of(name) == pytest.approx(rate, rel=1e-12), name
    assert decay_of("head.weight") == 0.05 and decay_of("head.bias") == 0.0 and decay_of("fc_norm.weight") == 0.0
    assert decay_of("encoder.embeddings.cls_token") == 0.0 and decay_of("encoder.embeddings.position_embeddings") == 0.0
    assert decay_of("encoder.layers.0.attention.q_proj.weight") == 0.05
    assert not any(name.startswith("encoder.layernorm") for g in optimiser.param_groups for name in g["names"])

    assert mae_learning_rate(2.5, PAPER) == pytest.approx(2.5e-4)  # half-way through the warm-up
    assert mae_learning_rate(52.5, PAPER) == pytest.approx(1e-6 + (5e-4 - 1e-6) * 0.5)  # half-way down the cosine
    assert mae_learning_rate(100.0, PAPER) == pytest.approx(1e-6)
    set_learning_rate(optimiser, 2.5, PAPER)
    assert rate_of("head.weight") == pytest.approx(2.5e-4) and rate_of("encoder.embeddings.cls_token") == pytest.approx(2.5e-4 * 0.274625)


def test_paper_recipe_fine_tunes_end_to_end(tmp_path):
    from test_evaluation_utility import crops

    folder = _tiny_mae(tmp_path / "mae", layers=2)
    train, labels, test, test_labels = [], [], [], []
    small = lambda views: [np.asarray(Image.fromarray(v).resize((48, 48))) for v in views]  # noqa: E731
    for i, (name, photo) in enumerate({"astronaut": astronaut(), "coffee": coffee()}.items()):
        train += small(crops(photo, 8, seed=i))
        labels += [name] * 8
        test += small(crops(photo, 4, seed=100 + i))
        test_labels += [name] * 4
    blank = [np.full_like(image, 128) for image in train]
    # The paper's recipe at a size that runs here: 16 images, batch 4 x accumulation 2, 12 epochs (warm-up 5).
    result = compute_utility(blank, train, labels, test, test_labels, recipe="paper", backbone_model=folder, epochs=12,
                             learning_rate=2e-3, batch_size=4, gradient_accumulation=2, local_files_only=True)
    assert result["recipe"] == "paper" and "RandAugment (2, 9, 0.5)" in result["models"]["backbone"]["recipe"]
    assert "batch 4 x 2" in result["models"]["backbone"]["recipe"] and "layer decay 0.65" in result["models"]["backbone"]["recipe"]
    assert result["safe_accuracy"] == 0.5, "identical blank inputs: one class for every test image"
    assert result["raw_accuracy"] >= 0.75, result["raw_accuracy"]
    with pytest.raises(ValueError, match="recipe must be one of"):
        compute_utility(train, train, labels, test, test_labels, recipe="fast", backbone_model=folder, local_files_only=True)
