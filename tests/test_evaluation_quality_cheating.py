import numpy as np
import pytest

from photos import astronaut, blurred, chelsea, coffee
from u2s_datasets.evaluation.cheating import (changed_outside_regions, compute_cheating, phash_distance,
                                              region_boxes)
from u2s_datasets.evaluation.quality import ClipImageFeatures, compute_quality


@pytest.fixture(scope="module")
def clip_folder(tmp_path_factory):
    from tiny_models import tiny_clip

    return tiny_clip(str(tmp_path_factory.mktemp("clip")))


def test_identical_images_are_a_full_copy():
    face = astronaut()
    result = compute_cheating([face], [face], regions=[[[180, 50, 270, 180]]], clip=False)
    assert result["ssim"] == pytest.approx(1.0)
    assert result["psnr"] == 100.0
    assert result["phash_distance"] == 0
    assert result["changed_outside_regions"] == 0.0


def test_unrelated_photos_are_not_a_copy():
    a, b = coffee(), chelsea()
    result = compute_cheating([b], [a], clip=False)
    assert result["ssim"] < 0.5
    assert result["psnr"] < 20
    assert phash_distance(a, b) >= 16  # about half of the 64 bits differ for unrelated pictures


def test_edit_inside_the_region_leaves_the_rest_untouched():
    face = astronaut()
    box = [180, 50, 270, 180]
    edited = face.copy()
    edited[50:180, 180:270] = blurred(face, 12)[50:180, 180:270]
    inside_only = compute_cheating([edited], [face], regions=[[{"category": "people_faces", "box": box, "score": 1.0}]],
                                   clip=False)
    assert inside_only["changed_outside_regions"] == 0.0
    everywhere = changed_outside_regions(face, blurred(face, 12), region_boxes([box]))
    assert everywhere > 0.3
    assert inside_only["ssim"] > compute_cheating([blurred(face, 12)], [face], clip=False)["ssim"]


def test_lpips_says_how_to_turn_it_on():
    face = astronaut()
    result = compute_cheating([face], [face], clip=False)
    assert result["lpips"] is None and "lpips_backbone" in result["lpips_status"]


def test_bad_regions_and_images():
    face = astronaut()
    with pytest.raises(ValueError, match="region 0"):
        compute_cheating([face], [face], regions=[[[1, 2, 3]]], clip=False)
    with pytest.raises(ValueError, match="differ in length"):
        compute_cheating([face], [face], regions=[[], []], clip=False)
    with pytest.raises(ValueError, match=r"predictions\[0\]"):
        compute_cheating([np.zeros((0, 0, 3), np.uint8)], [face], clip=False)


def test_clip_image_similarity_through_a_real_checkpoint(clip_folder):
    a, b = coffee(), chelsea()
    result = compute_cheating([a, b], [a, a], clip_model=clip_folder)
    assert result["per_image"]["clip_image_similarity"][0] == pytest.approx(1.0, abs=1e-5)
    assert result["per_image"]["clip_image_similarity"][1] < 1.0
    assert result["models"]["clip"] == {"id": clip_folder, "revision": None}


def test_quality_scores_through_a_real_checkpoint(clip_folder):
    a, b = coffee(), chelsea()
    result = compute_quality([a, b], [a, b], ["a cup of coffee", "a cat"], source_captions=["coffee", "a cat"],
                             clip_model=clip_folder, fid_features="clip")
    scores = result["per_image"]["clip_score"]
    assert len(scores) == 2 and all(0.0 <= s <= 100.0 for s in scores)
    assert result["per_image"]["clip_score"] == pytest.approx(result["per_image"]["original_clip_score"])
    assert result["fid"] == pytest.approx(0.0, abs=1e-3)  # the same image sets
    assert result["models"]["clip"]["id"] == clip_folder


def test_clip_features_module_shape(clip_folder):
    import torch

    from u2s_datasets.evaluation.cache import cached
    from u2s_datasets.evaluation.quality import ClipEncoder

    encoder = cached(ClipEncoder, model=clip_folder, revision=None, device=None, local_files_only=False, batch_size=16)
    features = ClipImageFeatures(encoder)(torch.randint(0, 255, (3, 3, 299, 299), dtype=torch.uint8))
    assert features.shape == (3, 16)


def test_quality_needs_text_captions(clip_folder):
    a = coffee()
    with pytest.raises(TypeError, match=r"captions\[0\]"):
        compute_quality([a], [a], [None], clip_model=clip_folder)
    with pytest.raises(ValueError, match="differ in length"):
        compute_quality([a], [a], ["x", "y"], clip_model=clip_folder)
