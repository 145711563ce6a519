"""Experiments: one module per paper artefact, each a frozen dataclass of its settings with run()."""

# The submodules (importing the package imports none of them).
__all__ = [
    "attack_progress",
    "blur_transfer",
    "classifier_training",
    "defendpp_reconstructions",
    "deflection_study",
    "mnist_robustness",
    "model_training",
    "paper_sgd",
    "pgd_linf",
    "row_benchmark",
    "rp2_stickers",
    "smoothing_votes",
    "spectra_maps",
    "stationary_scores",
    "training_checkpoint",
    "training_monitors",
]
