"""``python -m u2s_datasets_metrics``: register the ``u2s/<name>`` loaders in evaluate's module cache now."""

import sys

from . import register

written = register()
if not written:
    sys.exit("nothing registered: HF_HOME, HF_MODULES_CACHE or XDG_CACHE_HOME is empty or relative, "
             "so evaluate's module cache has no absolute path")
for script in written:
    print(script)
