"""One calling convention across the attacks (issue #30): model first, then the images as `x`, labels as
`y` or `targets`, every setting keyword-only, the input box as `clip_values`; the old keyword names still
work for one release and warn."""

import inspect

import numpy as np
import pytest

from blurnet_tf import attacks
from blurnet_tf.attacks import carlini_wagner_l2, ddn, deepfool, lbfgs_attack, linf_attack, rp2

ATTACKS = {
    "rp2": ("x", "mask", "targets"),
    "carlini_wagner_l2": ("x", "y"),
    "ddn": ("x", "y"),
    "lbfgs_attack": ("x", "targets"),
    "deepfool": ("x",),
    "jsma": ("x", "targets"),
    "linf_attack": ("x",),
    "autoattack": ("x", "y"),
}


@pytest.mark.parametrize("name, data", ATTACKS.items())
def test_every_attack_takes_the_model_then_its_data_and_keyword_only_settings(name, data):
    params = list(inspect.signature(getattr(attacks, name)).parameters.values())
    assert [p.name for p in params[: 1 + len(data)]] == ["model", *data]
    assert all(p.kind is p.KEYWORD_ONLY for p in params[1 + len(data) :]), name
    assert not {"images", "labels", "clip", "input_clip"} & {p.name for p in params}


def test_the_old_keyword_names_still_work_and_warn():
    from test_autoattack import linear_case

    model, x, labels, _ = linear_case(classes=2, n=4)
    new = ddn(model, x, labels, steps=3, clip_values=(0.0, 1.0))
    with pytest.warns(DeprecationWarning, match=r"ddn\(images=...\) is deprecated .* use x="):
        old = ddn(model, images=x, labels=labels, steps=3, clip=(0.0, 1.0))
    np.testing.assert_array_equal(old.adversarial, new.adversarial)
    with pytest.raises(TypeError, match="both images= .deprecated. and x="):
        ddn(model, images=x, x=x, y=labels)
    for fn, old_names in (
        (rp2, {"images", "input_clip"}),
        (carlini_wagner_l2, {"images", "labels", "clip", "max_iterations"}),
        (lbfgs_attack, {"images", "clip", "max_iterations"}),
        (deepfool, {"images", "max_iter"}),
    ):
        assert set(fn.renamed_keywords) == old_names


def test_every_iterative_attack_but_rp2_names_its_budget_steps():
    """Issue 42: one name for an iteration budget (C&W's max_iterations, L-BFGS's and DeepFool's max_iter
    still work, with a warning). RP2 keeps `epochs`, its paper's and every binary's name for its Adam steps."""
    for fn in (carlini_wagner_l2, lbfgs_attack, deepfool, ddn, linf_attack, attacks.autoattack):
        assert "steps" in inspect.signature(fn).parameters, fn.__name__
    assert "epochs" in inspect.signature(rp2).parameters
    from test_autoattack import linear_case

    model, x, labels, _ = linear_case(classes=2, n=4)
    with pytest.warns(DeprecationWarning, match=r"carlini_wagner_l2\(max_iterations=...\) is deprecated .* use steps="):
        old = carlini_wagner_l2(model, x, labels, max_iterations=3, binary_search_steps=1)
    np.testing.assert_array_equal(
        old.adversarial, carlini_wagner_l2(model, x, labels, steps=3, binary_search_steps=1).adversarial
    )
