"""What the ``evaluate`` modules in ``metrics/`` share: inputs, checks, the call into the suite.

A metric script names its texts and its compute function; ``ImagePairMetric`` does the rest.
Scripts import this module (``from u2s_datasets.evaluation import metric_support``), not the
class: evaluate takes the first ``Metric`` subclass it finds in a script as the script's own.
"""

import itertools

import datasets
import evaluate

from .inputs import check_pairs, check_texts
from .options import own_options

PAPER_URL = "https://arxiv.org/abs/2603.28605"
PAPER_CITATION = """\
@inproceedings{unsafe2safe2026,
  title     = {Unsafe2Safe},
  booktitle = {Proceedings of the IEEE/CVF Conference on Computer Vision and Pattern Recognition (CVPR)},
  year      = {2026},
  eprint    = {2603.28605},
  archivePrefix = {arXiv}
}
"""


class ImagePairMetric(evaluate.Metric):
    """Safe images (``predictions``) against their originals (``references``), plus per-row columns.

    Subclasses set the class attributes below; their ``compute_function`` is called as
    ``compute_function(predictions, references, *extra columns, **its own options)``.
    """

    compute_function = None  # compute_<name> of u2s_datasets.evaluation, as a staticmethod
    extra_columns = {}  # column name -> value type, or a tuple of the types it may take
    card_description = card_inputs = ""
    card_citation = PAPER_CITATION
    card_urls = (PAPER_URL,)

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # The card is the class's help text, as evaluate's own modules have it.
        evaluate.utils.file_utils.add_start_docstrings(cls.card_description, cls.card_inputs)(cls)

    def _info(self):
        return evaluate.MetricInfo(
            module_type="metric",
            description=self.card_description,
            citation=self.card_citation,
            inputs_description=self.card_inputs,
            features=self._features(),
            reference_urls=list(self.card_urls),
        )

    def _features(self):
        """One ``Features`` per combination of the columns' value types (evaluate tries each in turn)."""
        names = list(self.extra_columns)
        choices = [_types(self.extra_columns[name]) for name in names]
        features = [
            datasets.Features({"predictions": datasets.Image(), "references": datasets.Image(),
                               **{name: datasets.Value(t) for name, t in zip(names, types)}})
            for types in itertools.product(*choices)
        ]
        return features[0] if len(features) == 1 else features

    def _text_columns(self) -> list:
        return [name for name, types in self.extra_columns.items() if _types(types) == ("string",)]

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Add safe images, their originals and the extra columns, checked row by row."""
        columns = {name: kwargs.get(name) for name in self.extra_columns}
        check_pairs(predictions, references, **columns)
        for name in self._text_columns():
            check_texts(columns[name] or [], name)
        super().add_batch(predictions=predictions, references=references, **kwargs)

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Add one safe image, its original and its values of the extra columns."""
        check_pairs([prediction], [reference])
        for name in self._text_columns():
            check_texts([kwargs.get(name)], name)
        super().add(prediction=prediction, reference=reference, **kwargs)

    def _compute(self, predictions, references, **options):
        extra = [options.pop(name) for name in self.extra_columns]
        compute = self.compute_function
        return compute(predictions, references, *extra, **own_options(options, compute, f"u2s/{self.name}"))


def _types(types) -> tuple:
    return (types,) if isinstance(types, str) else tuple(types)
