"""``python -m u2s_datasets_metrics``: register the metric scripts in evaluate's module cache now."""

from . import register

for script in register():
    print(script)
