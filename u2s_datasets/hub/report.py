"""The pre-publish report: what goes out as it is, and must be acknowledged before it does."""

import logging
from dataclasses import dataclass, field

from .errors import PublishRefused

logger = logging.getLogger(__name__)


@dataclass
class PrepublishReport:
    """Text that is published as it is, per split: free-text columns and class names.

    Nothing in them was anonymized: a caption can name a person, a label can be a name, a
    note can hold an e-mail address. ``allow_text_columns=True`` (``--allow-text-columns``)
    acknowledges them; naming a column in ``keep_columns`` acknowledges that one.
    """

    text: dict = field(default_factory=dict)  # split -> [TextFinding]

    @property
    def columns(self) -> list:
        return list(dict.fromkeys(f.column for findings in self.text.values() for f in findings))

    def lines(self) -> list:
        return [f"  [{split}] {finding.describe()}" for split, findings in self.text.items() for finding in findings]

    def check(self, allow_text_columns: bool) -> None:
        """Refuse unacknowledged text; log acknowledged text."""
        if not self.columns:
            return
        listing = "\n".join(self.lines())
        if not allow_text_columns:
            raise PublishRefused(
                f"These columns hold text that is published as it is, not anonymized:\n{listing}\n"
                "Names, e-mail addresses and other personal details in them would go out unchanged. Read them; then "
                "pass allow_text_columns=True (--allow-text-columns) to publish them, keep_columns=[...] "
                "(--keep-column) to acknowledge single columns, or remove them with ds.remove_columns(...)."
            )
        logger.warning("Publishing text columns as they are, not anonymized (acknowledged):\n%s", listing)

    def as_record(self) -> dict:
        return {split: [_record(f) for f in findings] for split, findings in self.text.items()}


def _record(finding) -> dict:
    record = {"column": finding.column, "field": finding.field, "kind": finding.kind, "values": finding.values,
              "emails": finding.emails, "phones": finding.phones, "name_like": finding.names}
    if finding.kind == "text":
        record.update(distinct=finding.distinct, length_min_median_max=finding.lengths)
    return record
