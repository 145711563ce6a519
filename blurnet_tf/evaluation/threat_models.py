"""The benchmark's threat-model names and its radius rules, free of TensorFlow: `benchmark()` and the
benchmark binary (which checks its flags before TensorFlow loads) read them from here."""

from collections.abc import Sequence
from typing import Any, Literal, get_args

import numpy as np

from blurnet_tf.ranges import is_number

ThreatModel = Literal["clean", "Linf", "L2", "linf", "l2", "sticker", "physical", "autoattack", "checks"]
THREAT_MODELS: tuple[str, ...] = get_args(ThreatModel)

# (argument, what a radius must be, the rule): L∞ radii of [0, 1] images, L2 radii of any size.
RADII = (("linf_eps", "radii in (0, 1]", lambda e: 0 < e <= 1), ("l2_eps", "positive radii", lambda e: e > 0))


def unknown_threat_models(names: Sequence[str]) -> str | None:
    """The problem with `names` ("unknown [...]; choose from ..."), or None when every name is known."""
    unknown = sorted(set(names) - set(THREAT_MODELS))
    return f"unknown {unknown}; choose from {', '.join(THREAT_MODELS)}" if unknown else None


def radii(eps: Any) -> list[Any]:
    """One radius or a sequence of them, as a list (a radius list gives records per radius: accuracy against ε)."""
    if is_number(eps) or isinstance(eps, str):
        return [eps]
    return list(eps) if isinstance(eps, (Sequence, np.ndarray)) and np.ndim(eps) <= 1 else [eps]


def radii_problem(name: str, eps: Any) -> str | None:
    """What is wrong with the radii given for `name` ("linf_eps" or "l2_eps"), or None: at least one, each a
    finite number in its range."""
    expected, rule = next((e, r) for n, e, r in RADII if n == name)
    values = radii(eps)
    return None if values and all(is_number(e) and rule(e) for e in values) else f"expected {expected}"
