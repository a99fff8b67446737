"""How far the review of a saved output has got: counts for the card, a gate for publishing."""

from collections import Counter

from .. import columns as C
from . import decisions
from .saved import SavedOutput, load_run


class ReviewRequired(ValueError):
    """Publishing was asked to wait for a review that is missing or not applied yet."""


def review_status(folder: str, output: SavedOutput = None) -> dict:
    """Counts of the review of ``folder``: rows reviewed, flagged rows left, decisions not applied yet.

    ``flagged`` rows are those the run marked private (errors included); ``pending`` rows have
    decisions that ``u2s apply-review`` has not written into the images yet; ``regions_removed``
    counts the run's regions a reviewer deleted (their content goes out as it was), row by row
    in ``_removed``.
    """
    output = output or SavedOutput(folder)
    lines = decisions.read(folder)
    reviews = decisions.replay(lines)
    flagged = [row for row in output.rows if row.is_private]
    reviewed = [row for row in output.rows if row.key in reviews and reviews[row.key].reviewed]
    pending = [row for row in reviewed if reviews[row.key].changes(row)]
    verdicts = Counter(reviews[row.key].verdict or "regions_only" for row in reviewed)
    applied = load_run(folder).get("review") or {}
    pending_keys = {row.key for row in pending}
    removed = [_removal(row, reviews[row.key], row.key in pending_keys) for row in reviewed if reviews[row.key].removed]
    return {
        "rows": len(output.rows),
        "flagged_rows": len(flagged),
        "reviewed_rows": len(reviewed),
        "reviewed_flagged_rows": sum(1 for row in flagged if row.key in reviews),
        "unreviewed_flagged_rows": sum(1 for row in flagged if row.key not in reviews),
        "accepted_rows": verdicts.get("accept", 0),
        "redacted_by_reviewer_rows": verdicts.get("redact_image", 0),
        "pending_rows": len(pending),
        "regions_removed": sum(len(r["categories"]) for r in removed),
        "rows_with_regions_removed": len(removed),
        "rows_passthrough_after_removal": sum(1 for r in removed if r["passthrough"]),
        "decisions": len(lines),
        "reviewers": sorted({line.get("reviewer", "unknown") for line in lines}),
        "os_users": sorted({line["os_user"] for line in lines if line.get("os_user")}),
        "applied_at": applied.get("applied_at"),
        "_pending_keys": [_label(row) for row in pending],
        "_unreviewed_flagged_keys": [_label(row) for row in flagged if row.key not in reviews],
        "_removed": removed,
    }


def review_summary(status: dict) -> str:
    """What the review did, for ``u2s publish`` to print: counts, then each row whose review removed regions."""
    text = (f"{status['reviewed_rows']} of {status['rows']} rows reviewed ({status['reviewed_flagged_rows']} of "
            f"{status['flagged_rows']} flagged), {status['pending_rows']} not applied yet; "
            f"{_count(status['regions_removed'], 'region')} removed by review in {_count(status['rows_with_regions_removed'], 'row')}")
    if not status["_removed"]:
        return text
    lines = [text + ", their content published as it was:"]
    for r in status["_removed"]:
        became = "not applied yet" if r["pending"] else "now passthrough" if r["passthrough"] else "its other regions still edited"
        removed = ", ".join(c if n == 1 else f"{n} {c}" for c, n in Counter(r["categories"]).items())
        lines.append(f"  {r['label']}: removed {removed} ({became})")
    return "\n".join(lines)


def card_figures(folder: str, status: dict = None) -> dict:
    """The review counts as shown on a dataset card (no row lists)."""
    status = status or review_status(folder)
    figures = {k: v for k, v in status.items() if not k.startswith("_") and k not in ("reviewers", "os_users")}
    figures["reviewers"], figures["os_users"] = len(status["reviewers"]), len(status["os_users"])
    return {k: v for k, v in figures.items() if v is not None}


def require_review(folder: str) -> dict:
    """The review status when every flagged row was reviewed and every decision applied; else ReviewRequired."""
    status = review_status(folder)
    problems = []
    if not status["decisions"]:
        problems.append(f"no review: {decisions.REVIEW_FILE} is missing or empty (run `u2s review {folder}`)")
    if status["unreviewed_flagged_rows"]:
        first = ", ".join(status["_unreviewed_flagged_keys"][:5])
        problems.append(f"{status['unreviewed_flagged_rows']} of {status['flagged_rows']} flagged rows are not reviewed "
                        f"(first: {first})")
    if status["pending_rows"]:
        first = ", ".join(status["_pending_keys"][:5])
        problems.append(f"{status['pending_rows']} reviewed rows are not applied yet (first: {first}); "
                        f"run `u2s apply-review {folder}`")
    if problems:
        raise ReviewRequired("review required: " + "; ".join(problems))
    return status


def _removal(row, review, pending: bool) -> dict:
    passthrough = not pending and not row.is_private and row.base_status == C.STATUS_PASSTHROUGH
    return {"split": row.split, "row": row.index, "name": row.name, "label": _label(row),
            "categories": [r["category"] for r in review.removed], "pending": pending, "passthrough": passthrough}


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def _label(row) -> str:
    return f"row {row.key}" + ("" if row.name == f"row {row.index}" else f" ({row.name})")
