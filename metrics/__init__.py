"""The u2s metric scripts, installed as the ``u2s_datasets_metrics`` package.

``path(name)`` is a script's folder. Loading by path never asks the Hugging Face Hub:
``u2s_datasets.load_metric(name)`` is ``evaluate.load(path(name))``.

``evaluate.load("u2s/<name>")`` asks the Hub first and runs a ``u2s/<name>`` Space if one
exists there; only when that fails (offline, or no such Space) does it fall back to the
newest entry in its module cache, ``<modules cache>/metrics/u2s--<name>/<64 hex>/<name>.py``.
``register()`` writes that entry: a two-line loader, the same for every install, that
imports the script of whichever ``u2s_datasets_metrics`` the loading Python imports. Two
installs sharing one cache therefore each run their own script, and an entry that does not
hold exactly the expected loader is rewritten, then made the newest.

The installed ``u2s_datasets_metrics.pth`` calls ``register_at_startup()`` at interpreter
start-up, so no import of ``u2s_datasets`` is needed first. It writes only under an
absolute cache path: with ``HF_HOME``, ``HF_MODULES_CACHE`` or ``XDG_CACHE_HOME`` set empty
or relative (which would put the cache in the working directory) it does nothing. This
module only uses the standard library: it runs in every start of the environment's Python.
"""

import hashlib
import os
import time
from typing import List, Optional

# script name -> the metric class it defines
CLASSES = {"privacy": "Privacy", "quality": "Quality", "cheating": "Cheating", "utility": "Utility", "flags": "Flags"}
NAMES = tuple(CLASSES)
NAMESPACE = "u2s"
_HERE = os.path.dirname(os.path.abspath(__file__))
_CACHE_VARIABLES = ("HF_HOME", "HF_MODULES_CACHE", "XDG_CACHE_HOME")


def path(name: str) -> str:
    if name not in CLASSES:
        raise ValueError(f"unknown u2s metric {name!r}; available: {', '.join(NAMES)}")
    return os.path.join(_HERE, name)


def modules_cache() -> Optional[str]:
    """evaluate's dynamic modules folder, resolved as evaluate.config does; None unless absolute."""
    for variable in _CACHE_VARIABLES:
        value = os.environ.get(variable)
        if value is not None and not os.path.isabs(os.path.expanduser(value)):
            return None
    hf_home = os.path.expanduser(
        os.getenv("HF_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "huggingface"))
    )
    cache = os.path.join(os.getenv("HF_MODULES_CACHE", os.path.join(hf_home, "modules")), "evaluate_modules")
    return cache if os.path.isabs(cache) else None  # "~" stays relative when no home directory is known


def loader_source(name: str) -> bytes:
    """The cache entry for ``u2s/<name>``: imports the script of the loading Python's own install."""
    path(name)
    return (
        f'"""{NAMESPACE}/{name} for evaluate: the {name} metric of the u2s-datasets install that loads it.\n\n'
        f"Written by u2s_datasets_metrics.register(); the same for every install.\n"
        f'"""\n\nfrom u2s_datasets_metrics.{name}.{name} import {CLASSES[name]}  # noqa: F401\n'
    ).encode()


def register(cache: Optional[str] = None) -> List[str]:
    """Write (or repair) each loader into evaluate's module cache and make it the newest entry.

    Returns the loader paths; an empty list when no absolute cache path is known."""
    if cache is None:
        cache = modules_cache()
        if cache is None:
            return []
    if not os.path.isabs(cache):
        raise ValueError(f"evaluate's module cache must be an absolute path, got {cache!r}")
    written = []
    for name in NAMES:
        source = loader_source(name)
        folder = os.path.join(cache, "metrics", f"{NAMESPACE}--{name}")
        target = os.path.join(folder, hashlib.sha256(source).hexdigest(), name + ".py")  # 64 hex, as evaluate expects
        if not _holds(target, source):
            _write(target, source, cache)
        _make_newest(folder, target, name)
        written.append(target)
    return written


def _holds(target: str, source: bytes) -> bool:
    if os.path.islink(target) or not os.path.isfile(target):
        return False
    with open(target, "rb") as f:
        return f.read() == source


def _write(target: str, source: bytes, cache: str):
    target_dir = os.path.dirname(target)
    os.makedirs(target_dir, exist_ok=True)
    for package_dir in (cache, os.path.join(cache, "metrics"), os.path.dirname(target_dir), target_dir):
        init = os.path.join(package_dir, "__init__.py")
        if not os.path.exists(init):
            open(init, "a").close()
    temporary = f"{target}.{os.getpid()}.tmp"
    with open(temporary, "wb") as f:
        f.write(source)
    os.replace(temporary, target)  # replaces a planted symlink itself, never the file it points to


def _make_newest(folder: str, target: str, name: str):
    # evaluate loads the entry whose script was modified last; ties are broken arbitrarily.
    others = [os.path.join(folder, h, name + ".py") for h in os.listdir(folder) if len(h) == 64]
    others = [os.stat(p).st_mtime for p in others if p != target and os.path.exists(p)]
    if others and os.stat(target).st_mtime <= max(others):
        newest = max(time.time(), max(others) + 1)
        os.utime(target, (newest, newest))


def register_at_startup():
    """The start-up hook: never fails the interpreter (a read-only cache just means no registration)."""
    try:
        register()
    except Exception:  # noqa: BLE001 - a start-up hook must not break unrelated programs
        pass
