"""``reproduce()``: the paper's protocol from a dataset to its table, one stage after another under ``out``.

1. ``data``: the dataset (Hub id, or an imagefolder), train and test.
2. ``stage1``: the paper preset over the training (and evaluation) split, regions blurred: the
   captions and instructions, and the blur baseline.
3. ``pairs``: SD3 FlowEdit targets from the private to the public caption for the private
   training rows, the reference's CLIP-ratio filter, the 95/5 cut.
4. ``finetuned``: MagicBrush fine-tuned with SafeAttention on them (``recipe="paper"``).
5. ``anonymized/<method>``: the same rows through the zero-shot and the fine-tuned editor.
6. ``metrics/<method>.json``: quality, cheating, privacy (``protocol="paper"``), utility
   (``recipe="paper"``) for raw, blur, zero-shot and fine-tuned.
7. ``table.md``, ``table.json``.
"""

import logging
import os
import time
from typing import Optional

from . import stages
from .plan import paper_plan, tiny_plan
from .sources import dataset_spec, load_source
from .table import build_table, markdown, write_table

logger = logging.getLogger(__name__)


def reproduce(dataset: str, out: str, tiny: bool = False, *, models: Optional[dict] = None, data_dir: Optional[str] = None,
              hub_id: Optional[str] = None, hub_config: Optional[str] = None, train_split: Optional[str] = None,
              test_split: Optional[str] = None, label_column: Optional[str] = None, train_limit: Optional[int] = None,
              test_limit: Optional[int] = None, device: Optional[str] = None) -> dict:
    """Run the whole protocol for ``dataset`` ("caltech101", "indoor67" or "coco") under ``out``; returns the table.

    ``tiny=True`` runs the same stages on tiny random models (built under ``out/models``) and a
    handful of sample photos with classes. ``models`` overrides the paper's models by role
    (``plan.PAPER_MODELS``: vlm, llm, editor, flowedit, clip, judge, face_pack, vgg, mae).
    Finished stages are skipped on a rerun.
    """
    spec = dataset_spec(dataset, hub_id=hub_id, config=hub_config, train_split=train_split, test_split=test_split,
                        label_column=label_column)
    os.makedirs(out, exist_ok=True)
    if tiny:
        from .tiny import tiny_dataset, tiny_models

        plan = tiny_plan(tiny_models(os.path.join(out, "models")))
        make = tiny_dataset
    else:
        plan = paper_plan(models, device)
        make = lambda: load_source(spec, data_dir, train_limit, test_limit)  # noqa: E731

    clock = _Clock()
    data = clock("data", stages.stage_data(out, make))
    if spec.label_column is None and "label" in data["train"].column_names:  # the tiny photos' classes, for COCO's layout
        data = data.remove_columns("label")
    split = spec.eval_split
    with_utility = "label" in data["train"].column_names
    method_splits = sorted({"train", split}) if with_utility else [split]

    stage1 = clock("stage1", stages.stage_anonymize(os.path.join(out, "stage1"), data, sorted({"train", split}), plan,
                                                    stages.editor_settings("blur", plan)))
    pairs = clock("pairs", stages.stage_pairs(os.path.join(out, "pairs"), stage1["train"], plan))
    finetuned = clock("finetuned", stages.stage_finetune(os.path.join(out, "finetuned"), pairs, plan))
    anonymized = {"raw": None, "blur": stage1}
    for method in ("zero-shot", "fine-tuned"):
        anonymized[method] = clock(f"anonymized/{method}", stages.stage_anonymize(
            os.path.join(out, "anonymized", method), data, method_splits, plan, stages.editor_settings(method, plan, finetuned)))

    rows = stages.evaluation_rows(stage1, split)
    os.makedirs(os.path.join(out, "metrics"), exist_ok=True)
    metrics = {m: clock(f"metrics/{m}", stages.stage_metrics(os.path.join(out, "metrics", f"{m}.json"), m, data, stage1,
                                                             anonymized[m], spec, plan, rows)) for m in stages.METHODS}
    settings = {"tiny": tiny, "dataset": spec.name, "hub_id": None if tiny or data_dir else spec.hub_id,
                "data_dir": data_dir, "eval_split": split, "plan": plan.to_dict()}
    table = build_table(spec.name, metrics, settings)
    paths = write_table(table, out)
    table["paths"] = paths
    logger.info("table: %s", paths)
    return table


class _Clock:
    """Logs how long each stage took (a skipped, finished stage takes no time)."""

    def __init__(self):
        self.last = time.perf_counter()

    def __call__(self, name, value):
        now = time.perf_counter()
        logger.info("stage %s: %.1f s", name, now - self.last)
        self.last = now
        return value


__all__ = ["reproduce", "markdown"]
