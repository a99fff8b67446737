"""The paper's three datasets: where they are on the Hub, and how they become one train/test ``DatasetDict``.

Every dataset comes out with an ``image`` column, and ``label`` (a ``ClassLabel``) where it has
classes. Caltech101 and MIT Indoor67 are classified (the utility task), and the editor is
evaluated on the anonymized training split, the one a user publishes; COCO is evaluated on
val2014, the split the paper held out of the editor's training (train2014), and has no class to
classify (its utility task, captioning, is not part of this command).
"""

from dataclasses import dataclass, replace
from typing import Optional

import datasets


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    hub_id: str
    config: Optional[str]
    train_split: str
    test_split: str
    label_column: Optional[str]  # None: no classification (utility n/a)
    image_column: str = "image"
    eval_split: str = "train"  # the split whose anonymized rows quality, cheating and privacy are measured on


DATASETS = {
    "caltech101": DatasetSpec("caltech101", "HuggingFaceM4/Caltech-101", "with_background_category", "train", "test", "label"),
    "indoor67": DatasetSpec("indoor67", "Voxel51/IndoorSceneRecognition", None, "train", "test", "label"),
    # COCO 2014: train2014 trains the editor, val2014 is where the paper measures it.
    "coco": DatasetSpec("coco", "HuggingFaceM4/COCO", "2014", "train", "validation", None, eval_split="test"),
}


def dataset_spec(name: str, **overrides) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return replace(DATASETS[name], **{k: v for k, v in overrides.items() if v is not None})


def load_source(spec: DatasetSpec, data_dir: Optional[str] = None, train_limit: Optional[int] = None,
                test_limit: Optional[int] = None, seed: int = 42) -> datasets.DatasetDict:
    """``{"train", "test"}`` of ``spec``: from the Hub by id, or from ``data_dir`` (an imagefolder: ``train/<class>/*``
    and ``test/<class>/*``). ``*_limit`` keeps that many rows, drawn with ``seed``."""
    if data_dir:
        loaded = datasets.load_dataset("imagefolder", data_dir=data_dir)
        missing = [s for s in ("train", "test") if s not in loaded]
        if missing:
            raise ValueError(f"{data_dir} has no {' and no '.join(missing)} folder: an imagefolder with train/ and test/ is needed")
        parts = {"train": loaded["train"], "test": loaded["test"]}
        label = "label" if spec.label_column and "label" in loaded["train"].column_names else None
        image = "image"
    else:
        parts = {"train": _hub(spec, spec.train_split), "test": _hub(spec, spec.test_split)}
        label, image = spec.label_column, spec.image_column
    out = {}
    for name, part in parts.items():
        limit = train_limit if name == "train" else test_limit
        if limit is not None and limit < len(part):
            part = part.shuffle(seed=seed).select(range(limit)).flatten_indices()
        out[name] = _normalised(part, image, label, spec.name)
    if label and not isinstance(out["train"].features["label"], datasets.ClassLabel):
        # Plain labels: one class list for both splits, from the training split's values.
        names = sorted({str(v) for v in out["train"]["label"]})
        for name in out:
            unseen = {str(v) for v in out[name]["label"]} - set(names)
            if unseen:
                raise ValueError(f"{spec.name}: the {name} split has labels the training split lacks: {sorted(unseen)[:5]}")
            out[name] = out[name].cast_column("label", datasets.Value("string")).cast_column("label", datasets.ClassLabel(names=names))
    return datasets.DatasetDict(out)


def _hub(spec: DatasetSpec, split: str):
    try:
        return datasets.load_dataset(spec.hub_id, spec.config, split=split)
    except (ConnectionError, OSError, ValueError, datasets.exceptions.DatasetNotFoundError) as e:
        raise FileNotFoundError(
            f"cannot load {spec.name} ({spec.hub_id}{', ' + spec.config if spec.config else ''}, split {split!r}) from the Hugging Face Hub: "
            f"{str(e).splitlines()[0][:200] if str(e) else type(e).__name__}. Offline, give a local copy with --data-dir "
            "(an imagefolder: train/<class>/*.jpg and test/<class>/*.jpg)") from None


def _normalised(part, image: str, label: Optional[str], name: str):
    """``image`` and, where the dataset has classes, ``label`` as a ClassLabel; nothing else travels on."""
    if image not in part.column_names:
        raise KeyError(f"{name}: no image column {image!r} (columns: {', '.join(part.column_names)})")
    keep = [image] + ([label] if label else [])
    if label and label not in part.column_names:
        raise KeyError(f"{name}: no label column {label!r} (columns: {', '.join(part.column_names)})")
    part = part.select_columns(keep)
    if image != "image":
        part = part.rename_column(image, "image")
    if label and label != "label":
        part = part.rename_column(label, "label")
    return part
