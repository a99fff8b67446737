"""Load the u2s metrics from the scripts this install ships, never from the Hugging Face Hub."""


def load_metric(name: str, **kwargs):
    """``evaluate.load`` of the ``name`` script shipped with u2s-datasets ("privacy", "quality",
    "cheating" or "utility"), by its absolute path; ``kwargs`` go to ``evaluate.load``.

    ``evaluate.load("u2s/<name>")`` would first run a Hub Space of that name if one existed,
    handing it the images; loading by path asks no one.
    """
    import evaluate
    import u2s_datasets_metrics

    return evaluate.load(u2s_datasets_metrics.path(name), **kwargs)
