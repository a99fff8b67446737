"""Options of one metric among the suite's, so that ``evaluate.combine`` can pass one set of keywords to all."""

import inspect

_INPUTS = {"predictions", "references"}


def _parameters(function) -> set:
    return set(inspect.signature(function).parameters) - _INPUTS


def own_options(options: dict, compute, metric: str) -> dict:
    """The keywords ``compute`` takes. Keywords of another suite metric are left out (they come
    from a combined call); a keyword no suite metric knows is an error."""
    from .cheating import compute_cheating
    from .privacy import compute_privacy
    from .quality import compute_quality
    from .utility import compute_utility

    own = _parameters(compute)
    suite = set().union(*(_parameters(f) for f in (compute_cheating, compute_privacy, compute_quality, compute_utility)))
    unknown = sorted(set(options) - suite)
    if unknown:
        raise TypeError(f"{metric}: unknown option(s) {', '.join(unknown)}; it accepts: {', '.join(sorted(own))}")
    return {key: value for key, value in options.items() if key in own}
