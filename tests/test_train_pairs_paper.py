"""The paper's pair recipe: the reference code's CLIP-ratio filter, its splits, and FlowEdit targets.

The filter is checked against the authors' ``filter_dataset.py`` formula run in pandas on
hand-made scores, and end to end with a tiny CLIP; the splits against the reference loaders'
``DataFrame.sample(frac=1, random_state=42)`` cuts; the FlowEdit targets with a tiny SD3
pipeline on triplets the transform made from real photos.
"""

import io
import json

import datasets
import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

from u2s_datasets import columns as C
from u2s_datasets.cli import main
from u2s_datasets.config import resolve_config
from u2s_datasets.edit.masks import region_mask
from u2s_datasets.testing.pipelines import random_sd3_pipeline
from u2s_datasets.train import build_pairs, load_pairs
from u2s_datasets.train.clip_filter import PairClip, passes_clip_ratio
from u2s_datasets.train.pairs import CLIP_EDIT, CLIP_ORIG, SOURCE_IMAGE, TARGET_IMAGE
from u2s_datasets.train.splits import source_pools, split_pairs

from train_data import anonymized, one_thread, paths  # noqa: F401  (fixtures)

FLOWEDIT = dict(num_inference_steps=4, flowedit_n_max=3, edit_resolution=64)


@pytest.fixture(scope="module")
def sd3(tmp_path_factory):
    folder = str(tmp_path_factory.mktemp("sd3") / "pipeline")
    random_sd3_pipeline().save_pretrained(folder)
    return folder


def _pixels(value) -> np.ndarray:
    image = value if isinstance(value, Image.Image) else Image.open(io.BytesIO(value["bytes"]))
    return np.asarray(image.convert("RGB"))


def _everything(pairs):
    return datasets.concatenate_datasets(list(pairs.values()))


# -- the CLIP-ratio filter


def _reference_filter(scores: pd.DataFrame, threshold: float = 0.7) -> pd.DataFrame:
    """The authors' filter_dataset.filter_by_clip_similarity, as published."""
    normalized = scores["clip_edit"] / scores["clip_orig"].replace(0, pd.NA)
    filtered = scores.assign(normalized_clip=normalized)
    return filtered[filtered["normalized_clip"] > threshold].copy()


def test_clip_ratio_keeps_what_the_reference_formula_keeps():
    scores = pd.DataFrame({
        "clip_orig": [0.30, 0.30, 0.30, 0.0, 0.25, -0.25, 0.28, 0.20, 0.31],
        "clip_edit": [0.25, 0.21, 0.20, 0.20, 0.26, -0.20, 0.10, 0.1401, 0.0],
    })
    for threshold in (0.7, 0.5, 0.9):
        expected = set(_reference_filter(scores, threshold).index)
        ours = {i for i, (e, o) in enumerate(zip(scores["clip_edit"], scores["clip_orig"])) if passes_clip_ratio(e, o, threshold)}
        assert ours == expected, threshold
    # By hand at 0.7: 0.833 kept, exactly 0.7 dropped (strictly above), 0.667 dropped, clip_orig 0 dropped,
    # a better edit than the original kept, two negatives giving 0.8 kept (the formula's own reading).
    assert {i for i in range(len(scores)) if passes_clip_ratio(scores["clip_edit"][i], scores["clip_orig"][i], 0.7)} == {0, 4, 5, 7}


def _authors_clip_score(model, processor, image: Image.Image, text: str) -> float:
    """ClipSimilarity of the reference code: [0, 1] pixels, bicubic to the square input, CLIP mean/std, cosine."""
    side = model.config.vision_config.image_size
    x = torch.from_numpy(np.asarray(image.convert("RGB"), np.float32) / 255).permute(2, 0, 1)[None]
    x = torch.nn.functional.interpolate(x, size=side, mode="bicubic", align_corners=False)
    x = (x - torch.tensor(processor.image_processor.image_mean).view(1, 3, 1, 1)) / torch.tensor(processor.image_processor.image_std).view(1, 3, 1, 1)
    tokens = processor.tokenizer([text], padding="max_length", max_length=77, truncation=True, return_tensors="pt")
    with torch.no_grad():
        image_features = model.get_image_features(pixel_values=x)
        text_features = model.get_text_features(**tokens)
    image_features = getattr(image_features, "pooler_output", image_features)
    text_features = getattr(text_features, "pooler_output", text_features)
    return float(torch.nn.functional.cosine_similarity(image_features, text_features)[0])


def test_clip_scores_are_computed_as_the_authors_do(paths, anonymized):
    from transformers import CLIPModel, CLIPProcessor

    model, processor = CLIPModel.from_pretrained(paths["clip"]).eval(), CLIPProcessor.from_pretrained(paths["clip"])
    wide = Image.fromarray(_pixels(anonymized[0]["image"])).resize((240, 120))
    ds = datasets.Dataset.from_dict({"image": [wide]}, features=datasets.Features({"image": datasets.Image()}))
    score = PairClip(paths["clip"]).clip_scores(ds, "image", ["a photo of a person"])[0]
    assert score == pytest.approx(_authors_clip_score(model, processor, wide, "a photo of a person"), abs=1e-5)
    # Stretched, not cropped: the processor's centre crop sees another picture.
    cropped = processor(images=[wide], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        crop_features = getattr(f := model.get_image_features(pixel_values=cropped), "pooler_output", f)
        text = getattr(t := model.get_text_features(**processor.tokenizer(["a photo of a person"], return_tensors="pt")), "pooler_output", t)
    assert abs(score - float(torch.nn.functional.cosine_similarity(crop_features, text)[0])) > 1e-4


def test_clip_ratio_filter_end_to_end_with_a_tiny_clip(paths, anonymized):
    everything, stats = build_pairs(anonymized, clip_model=paths["clip"], clip_filter="clip-ratio", clip_threshold=-1e9, with_stats=True)
    everything = _everything(everything)
    assert set(everything.column_names) == {SOURCE_IMAGE, C.EDIT_INSTRUCTION, C.PUBLIC_CAPTION, TARGET_IMAGE, CLIP_ORIG, CLIP_EDIT}
    assert stats.clip_filter == "clip-ratio" and stats.kept == stats.candidates == stats.edited
    # clip_orig is the source against its private caption, clip_edit the target against the public caption + instruction.
    by_source = {_pixels(row["image"]).tobytes(): row for row in anonymized}
    scorer = PairClip(paths["clip"])
    first = everything.select([0])
    row = by_source[_pixels(first[0][SOURCE_IMAGE]).tobytes()]
    assert first[0][CLIP_ORIG] == pytest.approx(scorer.clip_scores(first, SOURCE_IMAGE, [row[C.PRIVATE_CAPTION]])[0], abs=1e-6)
    target_text = f"{row[C.PUBLIC_CAPTION]} {row[C.EDIT_INSTRUCTION]}"
    assert first[0][CLIP_EDIT] == pytest.approx(scorer.clip_scores(first, TARGET_IMAGE, [target_text])[0], abs=1e-6)
    assert first[0][CLIP_ORIG] != pytest.approx(scorer.clip_scores(first, SOURCE_IMAGE, [row[C.PUBLIC_CAPTION]])[0], abs=1e-6)

    ratios = [(_pixels(p[SOURCE_IMAGE]).tobytes(), p[CLIP_EDIT] / p[CLIP_ORIG]) for p in everything]
    threshold = float(np.median([ratio for _, ratio in ratios]))
    kept, stats = build_pairs(anonymized, clip_model=paths["clip"], clip_filter="clip-ratio", clip_threshold=threshold, with_stats=True)
    kept_sources = sorted(_pixels(x).tobytes() for x in _everything(kept)[SOURCE_IMAGE])
    assert kept_sources == sorted(source for source, ratio in ratios if ratio > threshold + 1e-6)
    assert 0 < len(kept_sources) < len(ratios) and stats.filtered_out == len(ratios) - len(kept_sources)


# -- splits


def _coco(n_train=40, n_val=7, n_other=3) -> datasets.Dataset:
    files = [f"train2014/COCO_train2014_{i:012d}.jpg" for i in range(n_train)] + [f"val2014/COCO_val2014_{i:012d}.jpg" for i in range(n_val)]
    files += [f"other/{i}.jpg" for i in range(n_other)]
    order = np.random.RandomState(0).permutation(len(files))  # the source splits interleaved
    return datasets.Dataset.from_dict({"file": [files[i] for i in order]})


def _reference_cut(frame: pd.DataFrame, sd: bool):
    """The reference loaders: train2014 rows shuffled by pandas with seed 42; SD keeps the first 95 %, FLUX validates on the first 25 %."""
    train = frame[frame["file"].str.contains("train2014")].reset_index(drop=True).sample(frac=1.0, random_state=42).reset_index(drop=True)
    test = frame[frame["file"].str.contains("val2014")]
    if sd:
        cut = int(0.95 * len(train))
        return list(train["file"][:cut]), list(train["file"][cut:]), list(test["file"])
    cut = int(0.25 * len(train))
    return list(train["file"][cut:]), list(train["file"][:cut]), list(test["file"])


@pytest.mark.parametrize("ratio,sd", [("95/5", True), ("75/25", False)])
def test_ratio_splits_are_the_reference_loaders_cuts(ratio, sd):
    ds = _coco()
    pools = source_pools(ds["file"])
    kept = [i for i, p in enumerate(pools) if p is not None]
    split = split_pairs(ds.select(kept), ratio, 42, [pools[i] for i in kept])
    train, validation, test = _reference_cut(ds.to_pandas(), sd)
    assert split["train"]["file"] == train and split["validation"]["file"] == validation and split["test"]["file"] == test
    assert len(split["validation"]) == {"95/5": 2, "75/25": 10}[ratio]
    again = split_pairs(ds.select(kept), ratio, 42, [pools[i] for i in kept])
    other = split_pairs(ds.select(kept), ratio, 7, [pools[i] for i in kept])
    assert again["train"]["file"] == split["train"]["file"] and other["train"]["file"] != split["train"]["file"]
    assert set(other["train"]["file"]) | set(other["validation"]["file"]) == set(train) | set(validation)


def test_source_splits_are_read_from_the_column():
    assert source_pools(["a/train2014/1.jpg", "val2014", None, "test2015/x.jpg"]) == ["train", "test", None, None]
    assert source_pools(["train", "test"], ("train", "test")) == ["train", "test"]
    with pytest.raises(ValueError, match="row 0: file 'train2014_val2014.jpg' names both"):
        source_pools(["train2014_val2014.jpg"], column="file")


def test_split_by_in_build_pairs_keeps_source_splits_apart(anonymized, paths, tmp_path):
    names = anonymized["name"]
    files = [f"{'val2014' if i % 4 == 0 else 'train2014'}/{name}.png" for i, name in enumerate(names)]
    ds = anonymized.add_column("file", files)
    pairs, stats = build_pairs(ds, clip_model=None, split_by="file", with_stats=True)
    edited = {n: f for n, f, s in zip(names, files, ds[C.STATUS]) if C.base_status(s) == C.STATUS_EDITED}
    test_sources = {_pixels(x).tobytes() for x in pairs["test"][SOURCE_IMAGE]}
    by_name = {row["name"]: _pixels(row["image"]).tobytes() for row in anonymized}
    assert test_sources == {by_name[n] for n, f in edited.items() if f.startswith("val2014")}
    n_pool = sum(f.startswith("train2014") for f in edited.values())
    # Fractions 0.9 / 0.05 / 0.05: the pool cut 0.9 : 0.05, as the reference's EditDataset does.
    assert len(pairs["train"]) == int(0.9 / 0.95 * n_pool) and len(pairs["train"]) + len(pairs["validation"]) == n_pool
    assert "file" not in pairs["train"].column_names and stats.split_by == "file" and stats.outside_splits == 0
    # A row of neither split is left out and counted.
    odd = ds.map(lambda r, i: {"file": "elsewhere.png" if i == 1 else r["file"]}, with_indices=True, load_from_cache_file=False)
    _, stats = build_pairs(odd, clip_model=None, split_by="file", with_stats=True)
    assert stats.outside_splits == 1 and stats.kept == stats.candidates == len(edited) - 1
    with pytest.raises(ValueError, match="names 'train2015' or 'val2015'"):
        build_pairs(ds, clip_model=None, split_by="file", source_splits=("train2015", "val2015"))
    with pytest.raises(KeyError, match="lacks \\['coco_file'\\]"):
        build_pairs(ds, clip_model=None, split_by="coco_file")


# -- FlowEdit targets


def test_flowedit_targets_are_made_for_every_private_row(anonymized, sd3):
    pairs, stats = build_pairs(anonymized, clip_model=None, targets="flowedit", target_settings=dict(editor_model=sd3, **FLOWEDIT),
                               with_stats=True)
    everything = _everything(pairs)
    private = [row for row in anonymized if row[C.IS_PRIVATE] and not row[C.STATUS].startswith(C.STATUS_ERROR_PREFIX)]
    assert stats.targets == "flowedit" and stats.candidates == stats.kept == len(private) and stats.target_failed == 0
    assert set(everything.column_names) == {SOURCE_IMAGE, C.EDIT_INSTRUCTION, C.PUBLIC_CAPTION, TARGET_IMAGE, "clip_similarity"}
    safe = {_pixels(row["image"]).tobytes(): _pixels(row[C.SAFE_IMAGE]) for row in private}
    for pair in everything:
        source, target = _pixels(pair[SOURCE_IMAGE]), _pixels(pair[TARGET_IMAGE])
        assert target.shape == source.shape
        assert np.abs(target.astype(int) - source).mean() > 5, "a FlowEdit target is an edit of the whole image"
        assert not np.array_equal(target, safe[source.tobytes()]), "the target is FlowEdit's, not the pixelated safe image"
    # Deterministic per row: another run, in batches of one, gives the same targets.
    again = _everything(build_pairs(anonymized, clip_model=None, targets="flowedit",
                                    target_settings=dict(editor_model=sd3, edit_batch_size=1, **FLOWEDIT)))
    first = {_pixels(p[SOURCE_IMAGE]).tobytes(): _pixels(p[TARGET_IMAGE]) for p in everything}
    for pair in again:
        difference = np.abs(_pixels(pair[TARGET_IMAGE]).astype(int) - first[_pixels(pair[SOURCE_IMAGE]).tobytes()])
        assert difference.max() <= 1 and (difference > 0).mean() < 0.01


def test_flowedit_targets_inside_regions_keep_every_other_pixel(anonymized, sd3):
    pairs = build_pairs(anonymized, clip_model=None, targets="flowedit",
                        target_settings=dict(editor_model=sd3, edit_scope="regions", **FLOWEDIT))
    regions = {_pixels(row["image"]).tobytes(): row[C.PRIVACY_REGIONS] for row in anonymized}
    settings = resolve_config().edit
    checked = 0
    for pair in _everything(pairs):
        source, target = _pixels(pair[SOURCE_IMAGE]), _pixels(pair[TARGET_IMAGE])
        boxes = [r["box"] for r in regions[source.tobytes()]]
        mask = region_mask((source.shape[1], source.shape[0]), boxes, settings.region_margin, settings.feather)
        assert np.array_equal(target[mask == 0], source[mask == 0])
        assert np.abs(target[mask == 1].astype(int) - source[mask == 1]).mean() > 5
        checked += 1
    assert checked >= 12


def test_a_failing_editor_gives_no_pairs_never_copies(anonymized, tmp_path):
    pipe = random_sd3_pipeline()
    with torch.no_grad():
        pipe.vae.decoder.conv_out.bias.fill_(float("nan"))
    folder = str(tmp_path / "broken")
    pipe.save_pretrained(folder)
    with pytest.raises(ValueError, match="FlowEdit made none of the .* targets: EditorRunError: non-finite output"):
        build_pairs(anonymized, clip_model=None, targets="flowedit", target_settings=dict(editor_model=folder, **FLOWEDIT))


def test_cli_runs_the_papers_recipe(anonymized, paths, sd3, tmp_path, capsys):
    # As a COCO folder loads: train2014/ and val2014/ as two splits, each row's path in a column.
    files = [f"{'val2014' if i % 5 == 0 else 'train2014'}/{n}.png" for i, n in enumerate(anonymized["name"])]
    with_files = anonymized.add_column("file", files)
    source = str(tmp_path / "anonymized")
    datasets.DatasetDict({
        "train": with_files.filter(lambda f: f.startswith("train2014"), input_columns="file"),
        "validation": with_files.filter(lambda f: f.startswith("val2014"), input_columns="file"),
    }).save_to_disk(source)
    out = str(tmp_path / "pairs")
    args = ["pairs", source, out, "--targets", "flowedit", "--flowedit-model", sd3, "--set", "num_inference_steps=4",
            "--set", "flowedit_n_max=3", "--set", "edit_resolution=64", "--filter", "clip-ratio", "--clip-model", paths["clip"],
            "--clip-threshold", "-1000", "--ratio", "95/5", "--split-by", "file"]
    assert main(args) == 0
    pairs, stats = load_pairs(out)
    with open(f"{out}/u2s_pairs.json") as f:
        assert json.load(f) == stats
    assert stats["targets"] == "flowedit" and stats["clip_filter"] == "clip-ratio" and stats["split"] == "95/5"
    assert stats["split_by"] == "file" and stats["source_splits"] == ["train2014", "val2014"]
    assert set(pairs) == {"train", "validation", "test"} and set(pairs["train"].column_names) >= {CLIP_ORIG, CLIP_EDIT, TARGET_IMAGE}
    n_val = sum(f.startswith("val2014") for f, s in zip(files, anonymized[C.STATUS]) if s != C.STATUS_PASSTHROUGH)
    assert stats["split_sizes"]["test"] == n_val and stats["split_sizes"]["train"] == int(0.95 * (stats["kept"] - n_val))
    assert "FlowEdit failures" in capsys.readouterr().out
    assert main(["pairs", source, str(tmp_path / "other"), "--split", "train", "--set", "num_inference_steps=4"]) == 2
    assert "go with --targets flowedit" in capsys.readouterr().err
    assert main(["pairs", source, str(tmp_path / "other")]) == 2
    assert "take them all with --split-by" in capsys.readouterr().err
