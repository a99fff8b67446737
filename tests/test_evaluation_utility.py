import numpy as np
import pytest
from PIL import Image

from photos import astronaut, blurred, chelsea, coffee
from u2s_datasets.evaluation.utility import compute_utility


def crops(photo: np.ndarray, count: int, seed: int) -> list:
    """Random 60%-size crops with flips: different views of one real scene."""
    rng = np.random.default_rng(seed)
    height, width = photo.shape[:2]
    h, w = int(height * 0.6), int(width * 0.6)
    views = []
    for _ in range(count):
        y, x = rng.integers(0, height - h), rng.integers(0, width - w)
        view = photo[y:y + h, x:x + w]
        views.append(view[:, ::-1].copy() if rng.random() < 0.5 else view.copy())
    return views


@pytest.fixture(scope="module")
def split():
    photos = {"astronaut": astronaut(), "coffee": coffee(), "chelsea": chelsea()}
    train, train_labels, test, test_labels = [], [], [], []
    for i, (name, photo) in enumerate(photos.items()):
        train += crops(photo, 8, seed=i)
        train_labels += [name] * 8
        test += crops(photo, 4, seed=100 + i)
        test_labels += [name] * 4
    return train, train_labels, test, test_labels


def test_raw_training_is_well_above_chance_and_safe_equal_raw_gives_ratio_one(split):
    train, labels, test, test_labels = split
    result = compute_utility(train, train, labels, test, test_labels)
    assert result["chance_accuracy"] == pytest.approx(1 / 3)
    assert result["raw_accuracy"] >= 0.9
    assert result["safe_accuracy"] == result["raw_accuracy"]
    assert result["accuracy_ratio"] == 1.0
    assert result["models"]["backbone"]["id"] == "hist-hog"


def test_destroyed_training_images_lose_utility(split):
    train, labels, test, test_labels = split
    grey = [np.full_like(image, 128) for image in train]
    result = compute_utility(grey, train, labels, test, test_labels)
    assert result["safe_accuracy"] <= 0.5
    assert result["accuracy_ratio"] < 0.6


def test_mild_blur_keeps_most_utility(split):
    train, labels, test, test_labels = split
    result = compute_utility([blurred(image, 1.5) for image in train], train, labels, test, test_labels)
    assert result["accuracy_ratio"] >= 0.75


def test_transformers_backbone_runs_a_real_model(split, tmp_path):
    from tiny_models import tiny_vit

    folder = tiny_vit(str(tmp_path / "vit"))
    train, labels, test, test_labels = split
    result = compute_utility(train, train, labels, test, test_labels, backbone="transformers", backbone_model=folder)
    assert 0.0 <= result["raw_accuracy"] <= 1.0 and result["accuracy_ratio"] == 1.0
    assert result["models"]["backbone"] == {"id": folder, "revision": None}


def test_bad_utility_inputs(split):
    train, labels, test, test_labels = split
    with pytest.raises(ValueError, match="differ in length"):
        compute_utility(train, train, labels[:-1], test, test_labels)
    with pytest.raises(TypeError, match=r"labels\[0\]"):
        compute_utility(train, train, [None] + labels[1:], test, test_labels)
    with pytest.raises(ValueError, match="test split"):
        compute_utility(train, train, labels, [], [])
    with pytest.raises(ValueError, match="unknown utility backbone"):
        compute_utility(train, train, labels, test, test_labels, backbone="resnet")


@pytest.fixture(scope="module")
def tiny_mae(tmp_path_factory):
    """MAE's encoder architecture (ViTMAEModel), tiny and random, with a PIL image processor."""
    import torch
    from transformers import ViTMAEConfig, ViTMAEModel
    from transformers.models.vit.image_processing_pil_vit import ViTImageProcessorPil

    folder = tmp_path_factory.mktemp("mae")
    torch.manual_seed(0)
    config = ViTMAEConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
                          image_size=32, patch_size=8, mask_ratio=0.75)
    ViTMAEModel(config).save_pretrained(folder)
    ViTImageProcessorPil(size={"height": 32, "width": 32}).save_pretrained(folder)
    return str(folder)


def test_finetuned_mae_learns_real_classes_and_learns_nothing_from_blank_safe_images(tiny_mae):
    photos = {"astronaut": astronaut(), "coffee": coffee()}
    train, labels, test, test_labels = [], [], [], []
    small = lambda views: [np.asarray(Image.fromarray(v).resize((48, 48))) for v in views]  # noqa: E731
    for i, (name, photo) in enumerate(photos.items()):
        train += small(crops(photo, 8, seed=i))
        labels += [name] * 8
        test += small(crops(photo, 4, seed=100 + i))
        test_labels += [name] * 4
    blank = [np.full_like(image, 128) for image in train]
    result = compute_utility(blank, train, labels, test, test_labels, protocol="paper", backbone_model=tiny_mae,
                             epochs=10, learning_rate=1e-3, batch_size=4, local_files_only=True)
    assert result["raw_accuracy"] >= 0.875
    assert result["safe_accuracy"] == result["chance_accuracy"] == 0.5  # identical inputs: one class for every image
    assert result["accuracy_ratio"] == pytest.approx(0.5 / result["raw_accuracy"])
    assert result["protocol"] == "paper" and "fine-tuned MAE ViT" in result["models"]["backbone"]["recipe"]


def test_mae_classifier_sees_every_patch(tiny_mae):
    import torch
    from transformers import ViTMAEModel

    from u2s_datasets.evaluation.finetune import MAEClassifier

    encoder = ViTMAEModel.from_pretrained(tiny_mae, mask_ratio=0.0)
    model = MAEClassifier(encoder, 3).eval()
    pixels = torch.randn(2, 3, 32, 32)
    hidden = encoder(pixel_values=pixels, noise=torch.arange(16.0).expand(2, -1)).last_hidden_state
    assert hidden.shape == (2, 1 + 16, 32)  # the class token and all 16 patches: nothing masked
    with torch.inference_mode():
        assert torch.equal(model(pixels), model(pixels))  # no random masking between calls
