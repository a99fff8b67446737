"""What a sharded run was made with, so a rerun resumes only into its own kind of shards."""

import hashlib
import json
import os

from .. import __version__
from .source import ipc_bytes

FORMAT_VERSION = 1


def input_fingerprint(ds, first_shard=None) -> str:
    """``ds._fingerprint`` for a Dataset; for a streaming input, a digest of its features,
    data files and first shard (a generator has no files, so its content decides)."""
    fingerprint = getattr(ds, "_fingerprint", None)
    if fingerprint:
        return fingerprint
    digest = hashlib.sha256()
    features = ds.features.to_dict() if ds.features is not None else None
    digest.update(json.dumps(features, sort_keys=True, default=str).encode())
    digest.update(json.dumps(_data_files(ds), sort_keys=True, default=str).encode())
    if first_shard is not None:
        digest.update(ipc_bytes(first_shard))
    return "stream-" + digest.hexdigest()[:16]


def build_manifest(transform, fingerprint: str, shard_size: int, total_rows, features) -> dict:
    manifest = {
        "format_version": FORMAT_VERSION,
        "config": transform.config.to_dict(),
        "config_hash": transform.config.hash(),
        "image_column": transform.image_column,
        "class_column": getattr(transform, "class_column", None),
        "class_names": list(transform.class_names) if getattr(transform, "class_names", None) else None,
        "input_fingerprint": fingerprint,
        "shard_size": shard_size,
        "total_rows": total_rows,
        "features": features.to_dict(),
        "package_version": __version__,
    }
    # As it will read back from run.json (tuples become lists), so comparisons see settings, not types.
    return json.loads(json.dumps(manifest, default=list))


# Fields that decide what a shard holds; package_version is recorded but does not block a resume.
_DECISIVE = ("format_version", "config_hash", "image_column", "class_column", "class_names", "input_fingerprint", "shard_size", "features")


def differences(old: dict, new: dict) -> list:
    """Human-readable lines for every decisive field that differs between two manifests."""
    lines = []
    for key in _DECISIVE:
        if old.get(key) == new.get(key):
            continue
        if key == "config_hash":
            changed = _changed_settings(old.get("config", {}), new.get("config", {}))
            lines.append(f"config_hash {old.get(key)} -> {new.get(key)} ({'; '.join(changed) or 'settings differ'})")
        elif key == "features":
            lines.append("output features differ")
        else:
            lines.append(f"{key} {old.get(key)!r} -> {new.get(key)!r}")
    return lines


def check_resumable(path: str, new: dict) -> None:
    with open(path) as f:
        old = json.load(f)
    changed = differences(old, new)
    if changed:
        raise ValueError(
            f"{os.path.dirname(os.path.dirname(path))!r} holds shards of a different run: "
            + "; ".join(changed)
            + ". Use another output folder, or overwrite=True (--overwrite) to start again."
        )


def _changed_settings(old: dict, new: dict, prefix: str = "") -> list:
    changed = []
    for key in sorted(set(old) | set(new)):
        a, b = old.get(key), new.get(key)
        if isinstance(a, dict) and isinstance(b, dict):
            changed += _changed_settings(a, b, f"{prefix}{key}.")
        elif a != b:
            changed.append(f"{prefix}{key}: {a!r} -> {b!r}")
    return changed


def _data_files(ds) -> list:
    """Data files a streaming dataset reads, where datasets keeps them in the iterable's kwargs."""
    files, node, seen = [], getattr(ds, "_ex_iterable", None), 0
    while node is not None and seen < 32:
        for value in (getattr(node, "kwargs", None) or {}).values():
            if isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
                files.extend(value)
        node, seen = getattr(node, "ex_iterable", None), seen + 1
    return files
