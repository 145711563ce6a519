"""Evaluation: accuracy and attack metrics.

`from blurnet_tf.evaluation import benchmark, strength_checks` loads those two on first use."""

from typing import Any

# The submodules (importing the package imports none of them).
__all__ = [
    "attack_strength",
    "clean_accuracy",
    "deflection_protocol",
    "frontier",
    "input_checks",
    "intervals",
    "metrics",
    "mnist_attack_suite",
    "reference_logs",
    "robustness_benchmark",
    "seed_tests",
    "spectra",
    "sticker_metrics",
    "threat_models",
]
# The public functions, imported lazily so that importing the package stays free of TensorFlow.
PUBLIC = {"benchmark": "robustness_benchmark", "strength_checks": "attack_strength"}


def __getattr__(name: str) -> Any:
    if name in PUBLIC:
        import importlib

        return getattr(importlib.import_module(f"{__name__}.{PUBLIC[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
