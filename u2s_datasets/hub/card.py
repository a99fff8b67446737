"""The dataset card, rendered from ``hub_cards/dataset_card.md`` with huggingface_hub's ``DatasetCard``."""

import re
from pathlib import Path
from typing import Mapping, Sequence

CARD_TEMPLATE = "dataset_card.md"
CARD_FILE = "README.md"
TAGS = ("privacy", "anonymized", "unsafe2safe")
GATING_PROMPT = (
    "This dataset is a privacy-safe variant of its source: faces, readable text and other private content were "
    "edited away automatically. Automatic anonymization can miss things. By requesting access you agree not to "
    "attempt to re-identify any person in it, and to report any remaining private content to the maintainers."
)
_SIZE_CATEGORIES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
                    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"))


def template_path() -> Path:
    """``hub_cards/dataset_card.md``: inside the installed package, or at the top of a source checkout."""
    package = Path(__file__).resolve().parent.parent
    for folder in (package / "hub_cards", package.parent / "hub_cards"):
        if (folder / CARD_TEMPLATE).is_file():
            return folder / CARD_TEMPLATE
    raise FileNotFoundError(f"The dataset card template {CARD_TEMPLATE} is missing from the installation ({package}); reinstall u2s-datasets")


def render_card(folder: Path, repo_id: str, provenance: Mapping, split_files: Mapping, features, *, pretty_name=None,
                task_categories=None, gated=None):
    """The dataset card (``huggingface_hub.DatasetCard``) for the shards in ``folder``."""
    from datasets import DatasetInfo, SplitDict, SplitInfo
    from datasets.info import DatasetInfosDict
    from datasets.utils.metadata import MetadataConfigs
    from huggingface_hub import DatasetCard, DatasetCardData

    counts = provenance["counts"]
    source = provenance["source_dataset"]
    pretty_name = pretty_name or (f"{source} (privacy-safe)" if source else repo_id.split("/")[-1])
    extra = {"extra_gated_prompt": GATING_PROMPT} if gated else {}
    card_data = DatasetCardData(
        license=provenance["license"] or "unknown",
        source_datasets=[source] if source else None,
        tags=list(TAGS),
        task_categories=list(task_categories) if task_categories else None,
        pretty_name=pretty_name,
        size_categories=_size_category(counts["total"]["rows"]),
        **extra,
    )
    data_files = [{"split": split, "path": f"data/{split}-*"} for split in split_files]
    MetadataConfigs({"default": {"data_files": data_files}}).to_dataset_card_data(card_data)
    splits = SplitDict()
    for split, files in split_files.items():
        splits.add(SplitInfo(name=split, num_bytes=_parquet_bytes(folder, files, "data"), num_examples=counts["splits"][split]["rows"]))
    all_files = [f for files in split_files.values() for f in files]
    info = DatasetInfo(features=features, splits=splits, download_size=_parquet_bytes(folder, all_files, "file"))
    info.dataset_size = sum(s.num_bytes for s in splits.values())
    DatasetInfosDict({"default": info}).to_dataset_card_data(card_data)

    anonymization = provenance["anonymization"]
    publishing = provenance["publishing"]
    card = DatasetCard.from_template(
        card_data,
        template_path=str(template_path()),
        repo_id=repo_id,
        pretty_name=pretty_name,
        source_dataset=source,
        anonymization=anonymization,
        editor=_stage(anonymization, "edit"),
        publishing=publishing,
        columns=list(features),
        counts=counts,
        files=counts["total"]["image_files"],
        reencoded_lossy=counts["total"]["image_files"].get("reencoded_lossy", 0) > 0,
        text_columns=_text_columns(publishing.get("text_report", {})),
        metric_rows=_flatten_metrics(provenance["metrics"]) if provenance["metrics"] else [],
        review=provenance.get("review"),
        gated=gated,
        gating_prompt=GATING_PROMPT,
    )
    return DatasetCard(re.sub(r"\n{3,}", "\n\n", str(card)))  # optional template blocks leave blank runs


def _stage(anonymization: Mapping, name: str):
    return next((s for s in anonymization.get("stages") or () if s["stage"] == name), None)


def _text_columns(report: Mapping) -> list:
    seen = {}
    for findings in report.values():
        for finding in findings:
            seen.setdefault(finding["field"], finding["kind"])
    return list(seen.items())


def _flatten_metrics(metrics: Mapping, prefix: str = "") -> list:
    rows = []
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            rows += _flatten_metrics(value, name + ".")
        else:
            rows.append((name, f"{value:.4g}" if isinstance(value, float) else str(value)))
    return rows


def _parquet_bytes(folder: Path, files: Sequence[str], what: str) -> int:
    """Uncompressed data bytes (``"data"``) or file bytes (``"file"``) of parquet files."""
    import pyarrow.parquet as pq

    if what == "file":
        return sum((Path(folder) / f).stat().st_size for f in files)
    total = 0
    for f in files:
        meta = pq.ParquetFile(Path(folder) / f).metadata
        total += sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    return total


def _size_category(rows: int) -> str:
    return next((name for limit, name in _SIZE_CATEGORIES if rows < limit), "n>1T" if rows >= 10**12 else "other")
