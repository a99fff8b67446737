"""The review page's content: rows filtered, paged and drawn with their reviewed regions."""

import math
from urllib.parse import urlencode

from .. import taxonomy
from ..templates import render
from . import decisions

PER_PAGE = 24


class ReviewPage:
    """Renders the page and single row cards of a ``SavedOutput`` under review."""

    def __init__(self, output, reviewer: str, low_confidence: float = 0.6):
        self.output = output
        self.reviewer = reviewer
        self.low_confidence = low_confidence
        self.categories = [c.id for c in taxonomy.CATEGORIES]

    def reviews(self) -> dict:
        return decisions.replay(decisions.read(self.output.folder))

    def page(self, query: dict) -> str:
        filters = _filters(query)
        reviews = self.reviews()
        matching = [row for row in self.output.rows if self._matches(row, reviews.get(row.key), filters)]
        pages = max(1, math.ceil(len(matching) / filters["per_page"]))
        page = min(max(1, filters["page"]), pages)
        shown = matching[(page - 1) * filters["per_page"]: page * filters["per_page"]]

        def page_url(number):
            return "?" + urlencode({**{k: v for k, v in filters.items() if v and k != "page"}, "page": number})

        return render(
            "review.html", title=f"u2s review: {self.folder_name}", folder_name=self.folder_name,
            rows=[self.row_view(row, reviews.get(row.key)) for row in shown], filters=filters, page=page, pages=pages,
            shown=len(shown), total=len(matching), page_url=page_url, categories=self.categories,
            statuses=sorted({row.base_status for row in self.output.rows}),
            present_categories=sorted({c for row in self.output.rows for c in row.categories + [r["category"] for r in row.regions]}),
            low_confidence=self.low_confidence, reviewer=filters["reviewer"] or self.reviewer, progress=self.progress(reviews),
        )

    def card(self, split: str, index: int) -> str:
        row = self.output.row(split, index)
        return render("review_card.html", row=self.row_view(row, self.reviews().get(row.key)), categories=self.categories)

    def progress(self, reviews=None) -> str:
        reviews = self.reviews() if reviews is None else reviews
        rows = self.output.rows
        flagged = [row for row in rows if row.is_private]
        pending = sum(1 for row in rows if row.key in reviews and reviews[row.key].changes(row))
        return (f"{sum(1 for row in rows if row.key in reviews)} of {len(rows)} rows reviewed "
                f"({sum(1 for row in flagged if row.key in reviews)} of {len(flagged)} flagged); "
                f"{pending} with changes not applied yet (u2s apply-review)")

    @property
    def folder_name(self) -> str:
        import os

        return os.path.basename(os.path.abspath(self.output.folder))

    def row_view(self, row, review) -> dict:
        review = review or decisions.RowReview()
        width, height = self.output.image_size(row.split, row.index)
        current = review.regions(row.regions)
        regions = [{**r, "state": self._state(r, row.regions)} for r in current]
        regions += [{**d, "state": "deleted"} for d in review.deleted if any(decisions.same_region(d, r) for r in row.regions)]
        items = list(row.notes)
        items += [f"low confidence {r['category']} region ({r['score']:.2f})" for r in row.regions if r["score"] < self.low_confidence]
        if row.is_private and not row.regions:
            items.append("flagged private with no region: the whole image was edited or redacted")
        query = urlencode({"split": row.split, "row": row.index})
        return {
            "id": f"{row.split or 'data'}-{row.index}", "split": row.split, "index": row.index, "name": row.name,
            "base_status": row.base_status, "categories": row.categories, "private_caption": row.private_caption,
            "public_caption": row.public_caption, "edit_instruction": row.edit_instruction, "width": width, "height": height,
            "regions": regions, "stored_regions": [{**r, "state": "low" if r["score"] < self.low_confidence else ""} for r in row.regions],
            "original_url": f"image?{query}&which=original", "safe_url": f"image?{query}&which=safe", "review_items": items,
            "default_category": (row.categories or ["people_faces"])[0],
            "review": {"verdict": review.verdict, "reviewers": review.reviewers, "decisions": review.decisions,
                       "last_time": review.last_time, "pending": review.reviewed and review.changes(row)},
        }

    def _state(self, region, stored) -> str:
        if not any(decisions.same_region(region, r) for r in stored):
            return "added"
        return "low" if region.get("score", 1.0) < self.low_confidence else ""

    def _matches(self, row, review, filters) -> bool:
        if filters["status"] and row.base_status != filters["status"]:
            return False
        if filters["category"] and filters["category"] not in row.categories + [r["category"] for r in row.regions]:
            return False
        if filters["flagged"] and row.is_private != (filters["flagged"] == "yes"):
            return False
        if filters["reviewed"] and (review is not None) != (filters["reviewed"] == "yes"):
            return False
        if filters["low"] and not any(r["score"] < self.low_confidence for r in row.regions):
            return False
        return True


def _filters(query: dict) -> dict:
    def one(name, default=""):
        return (query.get(name) or [default])[0]

    def number(name, default):
        try:
            return max(1, min(500, int(one(name, default))))
        except ValueError:
            return default

    return {"status": one("status"), "category": one("category"), "flagged": one("flagged"), "reviewed": one("reviewed"),
            "low": one("low"), "reviewer": one("reviewer"), "per_page": number("per_page", PER_PAGE), "page": number("page", 1)}
