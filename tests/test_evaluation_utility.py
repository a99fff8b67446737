import numpy as np
import pytest

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
