"""The image layer: decode any input form (``decode``), 16-bit and floating-point colour (``depth``),
the views detectors and editors see (``modes``), edits blended back (``compose``), output bytes
(``encode``), metadata removal (``metadata``, ``metadata_policy``) and JPEG block edits (``jpeg_lossless``).

It imports nothing else of the package: every other layer may import it.
"""
