"""Loaded models, kept per process so that repeated metric calls do not load them again."""

_MODELS = {}


def cached(factory, **options):
    key = (factory, tuple(sorted(options.items())))
    if key not in _MODELS:
        _MODELS[key] = factory(**options)
    return _MODELS[key]


def clear():
    _MODELS.clear()
