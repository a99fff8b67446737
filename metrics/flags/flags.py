"""Agreement of the stage-1 privacy verdict with hand labels (Unsafe2Safe evaluation suite)."""

import datasets
import evaluate

from u2s_datasets.evaluation import metric_support
from u2s_datasets.evaluation.flags import compute_flags

_DESCRIPTION = """\
Accuracy, precision, recall, F1 and the confusion matrix of the `is_private` column against
hand labels, private being the positive class. Labels are booleans or VISPR attribute labels:
an image labelled only `a0_safe` is not private, any other attribute makes it private.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (list of bool): the `is_private` column.
    references (list of bool, or list of lists of VISPR attribute ids): the hand labels.
Returns:
    accuracy, precision, recall, f1, confusion_matrix ([[tn, fp], [fn, tp]]), num_images, num_private.
Examples:
    >>> flags = evaluate.load("u2s/flags")
    >>> flags.compute(predictions=[True, False], references=[["a17_color"], ["a0_safe"]])["recall"]
    1.0
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class Flags(evaluate.Metric):
    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=_DESCRIPTION,
            citation=metric_support.PAPER_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            # Label lists first: evaluate would read any non-empty list as the boolean True.
            features=[
                datasets.Features({"predictions": datasets.Value("bool"), "references": datasets.List(datasets.Value("string"))}),
                datasets.Features({"predictions": datasets.Value("bool"), "references": datasets.Value("bool")}),
            ],
            reference_urls=[metric_support.PAPER_URL],
        )

    def _compute(self, predictions, references):
        return compute_flags(predictions, references)
