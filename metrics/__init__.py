"""The u2s metric scripts, installed as the ``u2s_datasets_metrics`` package.

``register()`` makes them loadable as ``evaluate.load("u2s/<name>")`` without the Hub:
it copies each script into evaluate's own module cache under the name evaluate looks up
for a community module it cannot fetch (``<HF_MODULES_CACHE>/evaluate_modules/metrics/
u2s--<name>/<hash>/<name>.py``). The installed ``u2s_datasets_metrics.pth`` calls it at
interpreter start-up, so no import of ``u2s_datasets`` is needed first. This module only
uses the standard library: it runs in every start of the environment's Python.

``path(name)`` is the script's folder, for a load that never asks the Hub:
``evaluate.load(u2s_datasets_metrics.path("privacy"))``.
"""

import hashlib
import os

NAMES = ("privacy", "quality", "cheating", "utility", "flags")
NAMESPACE = "u2s"
_HERE = os.path.dirname(os.path.abspath(__file__))


def path(name: str) -> str:
    if name not in NAMES:
        raise ValueError(f"unknown u2s metric {name!r}; available: {', '.join(NAMES)}")
    return os.path.join(_HERE, name)


def modules_cache() -> str:
    """evaluate's dynamic modules folder, resolved from the environment the way evaluate.config does."""
    hf_home = os.path.expanduser(
        os.getenv("HF_HOME", os.path.join(os.getenv("XDG_CACHE_HOME", "~/.cache"), "huggingface"))
    )
    return os.path.join(os.getenv("HF_MODULES_CACHE", os.path.join(hf_home, "modules")), "evaluate_modules")


def register(cache: str = None) -> list:
    """Copy each metric script into evaluate's module cache; returns the script paths written or kept."""
    cache = cache or modules_cache()
    written = []
    for name in NAMES:
        with open(os.path.join(path(name), name + ".py"), "rb") as f:
            source = f.read()
        folder = os.path.join(cache, "metrics", f"{NAMESPACE}--{name}")
        target_dir = os.path.join(folder, hashlib.sha256(source).hexdigest())  # 64 hex digits, as evaluate expects
        target = os.path.join(target_dir, name + ".py")
        if not os.path.exists(target):
            os.makedirs(target_dir, exist_ok=True)
            for package_dir in (cache, os.path.join(cache, "metrics"), folder, target_dir):
                init = os.path.join(package_dir, "__init__.py")
                if not os.path.exists(init):
                    open(init, "a").close()
            temporary = f"{target}.{os.getpid()}.tmp"
            with open(temporary, "wb") as f:
                f.write(source)
            os.replace(temporary, target)
        _make_newest(folder, target, name)
        written.append(target)
    return written


def _make_newest(folder: str, target: str, name: str):
    # evaluate picks the cached version whose script was modified last.
    mtimes = [os.stat(os.path.join(folder, h, name + ".py")).st_mtime
              for h in os.listdir(folder) if len(h) == 64 and os.path.exists(os.path.join(folder, h, name + ".py"))]
    if os.stat(target).st_mtime < max(mtimes):
        os.utime(target)


def register_at_startup():
    """The start-up hook: never fails the interpreter (a read-only cache just means no registration)."""
    try:
        register()
    except Exception:  # noqa: BLE001 - a start-up hook must not break unrelated programs
        pass
