"""The two measuring protocols of the suite.

``"paper"``: the authors' models, prompts and formulas, so figures can be set beside the paper's tables.
``"u2s"``: this project's figures (offline defaults, vanished faces counted, calibrated scales);
``"project"`` is accepted as its former name.
"""

PROTOCOLS = ("u2s", "paper")


def check_protocol(protocol: str) -> str:
    protocol = "u2s" if protocol == "project" else protocol
    if protocol not in PROTOCOLS:
        raise ValueError(f"protocol must be 'u2s' or 'paper', got {protocol!r}")
    return protocol
