"""What tests, benchmarks, notebooks and ``u2s reproduce --tiny`` build data, judges and tiny models from,
as ``diffusers.utils.testing_utils`` does: random-weight pipelines (``pipelines``, ``lora``), tiny
evaluation models (``evaluation_models``), the detectors' recall set (``recall_set``) and independent
readers that judge it (``readers``). The runtime layers never import it.
"""
