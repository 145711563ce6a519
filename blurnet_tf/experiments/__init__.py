"""Experiments: one module per paper artefact, each a frozen dataclass of its settings with run()."""
