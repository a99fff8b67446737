"""How well the stage-1 verdict (``is_private``) agrees with hand labels: accuracy, precision, recall, F1.

Labels are booleans (True = private), or VISPR-style attribute labels per image: an image whose
only attribute is ``a0_safe`` is not private, an image with any other attribute is private.
Private is the positive class; recall is the share of private images that were flagged.
"""

from typing import Optional

VISPR_SAFE = "a0_safe"


def label_is_private(label, index: int) -> bool:
    """One reference -> private or not. Accepts a bool, 0/1, "private"/"public", a VISPR attribute or a list of them."""
    if isinstance(label, bool):
        return label
    if isinstance(label, int) and label in (0, 1):
        return bool(label)
    if isinstance(label, str):
        label = [label]
    if isinstance(label, (list, tuple)) and label and all(isinstance(v, str) for v in label):
        names = {v.strip().lower() for v in label}
        if names <= {"private", "true", "1"}:
            return True
        if names <= {"public", "not private", "false", "0"}:
            return False
        # VISPR: "a0_safe" is the one attribute that means nothing private is shown.
        return bool(names - {VISPR_SAFE})
    raise ValueError(f"references[{index}]: expected a bool, 0/1, or VISPR attribute labels, got {label!r}")


def compute_flags(predictions: list, references: list, *, per_category: Optional[bool] = None) -> dict:
    """Confusion matrix and rates of predicted ``is_private`` against the labels, row for row."""
    if len(predictions) != len(references):
        raise ValueError(f"inputs differ in length: predictions={len(predictions)}, references={len(references)}")
    predicted = []
    for i, value in enumerate(predictions):
        if not isinstance(value, bool) and value not in (0, 1):
            raise ValueError(f"predictions[{i}]: expected is_private as a bool, got {value!r}")
        predicted.append(bool(value))
    actual = [label_is_private(label, i) for i, label in enumerate(references)]
    tp = sum(p and a for p, a in zip(predicted, actual))
    fp = sum(p and not a for p, a in zip(predicted, actual))
    fn = sum(a and not p for p, a in zip(predicted, actual))
    tn = sum(not p and not a for p, a in zip(predicted, actual))
    n = len(actual)
    precision = tp / (tp + fp) if tp + fp else None
    recall = tp / (tp + fn) if tp + fn else None
    f1 = 2 * precision * recall / (precision + recall) if precision and recall else (0.0 if tp + fp and tp + fn else None)
    return {
        "accuracy": (tp + tn) / n if n else None,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        # Rows: labelled not private / private; columns: flagged not private / private (scikit-learn's layout).
        "confusion_matrix": [[tn, fp], [fn, tp]],
        "num_images": n,
        "num_private": tp + fn,
    }
