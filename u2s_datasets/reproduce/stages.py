"""The stages of a reproduction, each writing one folder or file under the run's folder.

A stage writes to ``<name>.partial`` and renames it when it is complete, so an existing output
is a finished one and a rerun skips it; the fine-tuning keeps its own checkpoints and resumes
from them. Every stage calls the package's own functions: ``anonymize``, ``build_pairs``,
``finetune`` and the four metrics.
"""

import json
import logging
import os
import shutil
from contextlib import contextmanager

import datasets

from .. import columns as C

logger = logging.getLogger(__name__)

METHODS = ("raw", "blur", "zero-shot", "fine-tuned")


@contextmanager
def building(path: str):
    """A scratch path for a stage's output, renamed to ``path`` when the block ends without an error."""
    partial = path + ".partial"
    if os.path.isdir(partial):
        shutil.rmtree(partial)
    elif os.path.exists(partial):
        os.remove(partial)
    yield partial
    os.replace(partial, path)


def write_json(path: str, payload: dict) -> None:
    with building(path) as partial:
        with open(partial, "w") as f:
            json.dump(payload, f, indent=2, default=str)


def read_json(path: str) -> dict:
    with open(path) as f:
        return json.load(f)


def stage_data(out: str, make) -> datasets.DatasetDict:
    """The source dataset (train and test), saved once: ``make()`` loads it."""
    path = os.path.join(out, "data")
    if not os.path.isdir(path):
        with building(path) as partial:
            make().save_to_disk(partial)
    return datasets.load_from_disk(path)


def editor_settings(method: str, plan, finetuned: str = None) -> dict:
    if method == "blur":
        return {"editor": "blur"}
    model = plan.models["editor"] if method == "zero-shot" else finetuned
    return {"editor": "ip2p", "editor_model": model, **plan.editing}


def stage_anonymize(path: str, data: datasets.DatasetDict, splits, plan, settings: dict) -> datasets.DatasetDict:
    """``splits`` of ``data`` through the paper preset (stage 1, then the editor of ``settings``)."""
    if not os.path.isdir(path):
        from ..run import anonymize, write_config
        from ..transform import Unsafe2Safe

        labels = data["train"].features.get("label")
        classes = {"class_column": "label", "class_names": labels.names} if isinstance(labels, datasets.ClassLabel) else {}
        transform = Unsafe2Safe(preset="paper", device=plan.device, **classes, **plan.stage1, **settings)
        result, summary = anonymize(datasets.DatasetDict({s: data[s] for s in splits}), transform, batch_size=plan.batch_size,
                                    desc=f"{settings['editor']} {os.path.basename(path)}")
        logger.info("%s: %s", path, summary)
        with building(path) as partial:
            result.save_to_disk(partial)
            write_config(partial, transform)
            with open(os.path.join(partial, "u2s_summary.json"), "w") as f:
                json.dump(summary.to_dict(), f, indent=2)
    return datasets.load_from_disk(path)


def stage_pairs(path: str, stage1_train, plan) -> str:
    """FlowEdit targets for stage 1's private training rows, the reference's CLIP-ratio filter, the 95/5 cut."""
    if not os.path.isdir(path):
        from ..train.pairs import build_pairs, save_pairs

        pairs, stats = build_pairs(stage1_train, image_column="image", clip_model=plan.models["clip"], clip_threshold=plan.clip_threshold,
                                   split=plan.pair_split, seed=42, with_stats=True, clip_filter="clip-ratio", targets="flowedit",
                                   target_settings={"editor_model": plan.models["flowedit"], **plan.flowedit}, device=plan.device)
        with building(path) as partial:
            save_pairs(pairs, partial, stats)
    return path


def stage_finetune(path: str, pairs: str, plan) -> str:
    """MagicBrush (the zero-shot editor) fine-tuned with SafeAttention on the pairs, the paper's recipe."""
    if not os.path.exists(os.path.join(path, "README.md")):  # the model card is written last
        from ..train.finetune import finetune

        finetune(pairs, path, base_model=plan.models["editor"], resume=True, recipe="paper", dual_prompt="paper", **plan.finetune)
    return path


def evaluation_rows(stage1, split: str) -> list:
    """The rows stage 1 flagged private: every method is measured on the same ones."""
    flags = stage1[split][C.IS_PRIVATE]
    rows = [i for i, private in enumerate(flags) if private]
    if not rows:
        logger.warning("stage 1 flagged no row of %s private: every row is evaluated", split)
        rows = list(range(len(flags)))
    return rows


def stage_metrics(path: str, method: str, data, stage1, anonymized, spec, plan, rows: list) -> dict:
    """Quality, cheating, privacy (protocol="paper") and utility (recipe="paper") of one method, saved as JSON."""
    if os.path.exists(path):
        return read_json(path)
    from ..evaluation.cheating import compute_cheating
    from ..evaluation.privacy import compute_privacy
    from ..evaluation.quality import compute_quality
    from ..evaluation.utility import compute_utility

    models, device = plan.models, plan.device
    split = spec.eval_split
    original = data[split].select(rows)["image"]
    own = stage1 if anonymized is None else anonymized
    safe = original if anonymized is None else own[split].select(rows)[C.SAFE_IMAGE]
    captions = [c or "" for c in own[split].select(rows)[C.PUBLIC_CAPTION]]
    result = {"method": method, "rows": len(rows), "split": split}
    result["quality"] = compute_quality(safe, original, captions, clip_model=models["clip"], device=device)
    result["cheating"] = compute_cheating(safe, original, clip=False, lpips_backbone=models["vgg"], device=device)
    result["privacy"] = compute_privacy(safe, original, protocol="paper", face_pack=models["face_pack"], vlm_model=models["judge"],
                                        device=device)
    if "label" in data["train"].column_names:
        train = data["train"]["image"] if anonymized is None else anonymized["train"][C.SAFE_IMAGE]
        result["utility"] = compute_utility(train, None, data["train"]["label"], data["test"]["image"], data["test"]["label"],
                                            protocol="paper", recipe="paper", backbone_model=models["mae"], device=device, **plan.utility)
    write_json(path, result)
    return result
