"""Evaluation: accuracy and attack metrics."""

# The submodules (importing the package imports none of them).
__all__ = ["attack_strength", "clean_accuracy", "deflection_protocol", "frontier", "input_checks", "intervals",
           "metrics", "mnist_attack_suite", "reference_logs", "robustness_benchmark", "spectra",
           "sticker_metrics"]
