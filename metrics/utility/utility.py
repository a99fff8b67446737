"""Utility of a privacy-safe training set: train on safe, test on real (Unsafe2Safe evaluation suite)."""

import datasets
import evaluate

from u2s_datasets.evaluation.inputs import check_pairs
from u2s_datasets.evaluation.options import own_options
from u2s_datasets.evaluation.utility import compute_utility

_CITATION = """\
@inproceedings{unsafe2safe2026,
  title     = {Unsafe2Safe},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2026},
  eprint    = {2603.28605},
  archivePrefix = {arXiv}
}
"""

_DESCRIPTION = """\
A linear probe on frozen image features is trained once on the safe training images and
once on the raw training images (same labels), and both are tested on the REAL test
split. Reports both accuracies and their ratio (safe / raw; 1 means no utility lost).
Backbones: "hist-hog" (colour histograms + HOG, no weights, offline) or "transformers"
(pooled output of any transformers vision model, named by hub id + revision or folder).
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions: safe training images. references: the raw training images, row for row.
    labels (list of int or str): the class of each training row.
    test_images, test_labels: the REAL test split.
    backbone ("hist-hog" | "transformers"), backbone_model, backbone_revision, device,
    local_files_only, seed.
Returns:
    safe_accuracy, raw_accuracy, accuracy_ratio, chance_accuracy, n_train, n_test,
    n_classes, `per_image` (test rows), and `models` (id + revision).
Examples:
    >>> utility = evaluate.load("u2s/utility")
    >>> utility.compute(predictions=safe_train, references=raw_train, labels=train_labels,
    ...                 test_images=test_images, test_labels=test_labels)["accuracy_ratio"]
"""


def _features(label_type: str) -> datasets.Features:
    return datasets.Features(
        {"predictions": datasets.Image(), "references": datasets.Image(), "labels": datasets.Value(label_type)}
    )


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Utility(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=[_features("int64"), _features("string")],
            reference_urls=["https://arxiv.org/abs/2603.28605"],
        )

    def add_batch(self, *, predictions=None, references=None, labels=None, **kwargs):
        """Add safe training images (predictions), raw training images (references) and their labels."""
        check_pairs(predictions, references, labels=labels)
        super().add_batch(predictions=predictions, references=references, labels=labels, **kwargs)

    def add(self, *, prediction=None, reference=None, labels=None, **kwargs):
        """Add one safe training image, its raw version and its label."""
        check_pairs([prediction], [reference])
        super().add(prediction=prediction, reference=reference, labels=labels, **kwargs)

    def _compute(self, predictions, references, labels, **options):
        return compute_utility(predictions, references, labels, **own_options(options, compute_utility, "u2s/utility"))
