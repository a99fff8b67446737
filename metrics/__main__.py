"""``python -m u2s_datasets_metrics``: register the ``u2s/<name>`` loaders in evaluate's module cache now."""

import sys

from . import modules_cache, register

written = register()
if not written:
    sys.exit(f"no absolute evaluate module cache (HF_HOME, HF_MODULES_CACHE or XDG_CACHE_HOME is empty or relative; "
             f"resolved: {modules_cache()}); nothing registered")
for script in written:
    print(script)
