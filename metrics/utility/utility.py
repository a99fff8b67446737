"""Utility of a privacy-safe training set: train on safe, test on real (Unsafe2Safe evaluation suite)."""

from u2s_datasets.evaluation import metric_support
from u2s_datasets.evaluation.utility import compute_utility

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
    protocol ("u2s" | "paper"): "paper" fine-tunes an MAE ViT-B/16 classifier (backbone_model,
        default facebook/vit-mae-base) for `epochs` with `learning_rate` and `batch_size`.
    recipe ("default" | "paper"): how it fine-tunes; "paper" is MAE's recipe as the authors ran it
        (100 epochs, lr 5e-4, batch 64 x `gradient_accumulation` 4, RandAugment, drop path, layer decay).
Returns:
    safe_accuracy, raw_accuracy, accuracy_ratio, chance_accuracy, n_train, n_test,
    n_classes, `per_image` (test rows), and `models` (id + revision).
Examples:
    >>> utility = u2s_datasets.load_metric("utility")  # not evaluate.load("u2s/utility"): that asks the Hub first
    >>> utility.compute(predictions=safe_train, references=raw_train, labels=train_labels,
    ...                 test_images=test_images, test_labels=test_labels)["accuracy_ratio"]
"""


class Utility(metric_support.ImagePairMetric):
    compute_function = staticmethod(compute_utility)
    extra_columns = {"labels": ("int64", "string")}
    card_description, card_inputs = _DESCRIPTION, _KWARGS_DESCRIPTION
