"""A person in the loop: look at what was flagged, correct it, and write the corrections into the images.

- ``u2s review OUTPUT`` serves a page (``server.py``) whose decisions go to ``OUTPUT/review.jsonl``.
- ``apply_review`` re-renders the rows the decisions change, with the run's own editor and seed.
- ``review_status`` / ``require_review`` tell publishing how far the review has got, and which
  regions it removed.
"""

from .apply import apply_review
from .decisions import REVIEW_FILE
from .status import ReviewRequired, card_figures, require_review, review_status, review_summary

__all__ = ["REVIEW_FILE", "ReviewRequired", "apply_review", "card_figures", "require_review", "review_status", "review_summary"]
