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
    """Issue 42: one name for an iteration budget (C&W's and L-BFGS's max_iterations, DeepFool's max_iter
    still work, with a warning). RP2 keeps `epochs`, its paper's and every binary's name for its Adam steps;
    JSMA has none (it stops at a share of changed features, gamma)."""
    for fn in (carlini_wagner_l2, lbfgs_attack, deepfool, ddn, linf_attack, attacks.autoattack):
        assert "steps" in inspect.signature(fn).parameters, fn.__name__
    for name in ATTACKS:
        params = set(inspect.signature(getattr(attacks, name)).parameters)
        assert not {"max_iter", "max_iterations", "nb_iter", "iterations"} & params, name
    assert "epochs" in inspect.signature(rp2).parameters
    from test_autoattack import linear_case

    model, x, labels, _ = linear_case(classes=2, n=4)
    with pytest.warns(DeprecationWarning, match=r"carlini_wagner_l2\(max_iterations=...\) is deprecated .* use steps="):
        old = carlini_wagner_l2(model, x, labels, max_iterations=3, binary_search_steps=1)
    np.testing.assert_array_equal(
        old.adversarial, carlini_wagner_l2(model, x, labels, steps=3, binary_search_steps=1).adversarial
    )


def test_every_attack_but_rp2_returns_one_result_type_read_off_the_model():
    """Issue 42: every public attack but RP2 (lambdas x targets x images: RP2Result) returns an AttackResult:
    the images, success read off the model on them (off the label, or onto the target), the L2 norm where it
    succeeded (autoattack's in its threat model), and its settings as JSON naming it; np.asarray(result) still
    gives the images, with a DeprecationWarning. Four 8x8 images of a linear model and 1-3 steps decide it."""
    import json

    from test_autoattack import linear_case

    model, x, labels, radius = linear_case(classes=2, n=4)
    eps = float(np.sort(radius)[1:3].mean())  # between the 2nd and 3rd critical radii: FGSM breaks two of four
    targets = 1 - labels
    cw = dict(steps=3, binary_search_steps=1, initial_const=1.0, learning_rate=0.1)  # crosses in three steps
    calls = {  # name: (result, targeted, the steps it was given)
        "carlini_wagner_l2": (carlini_wagner_l2(model, x, labels, **cw), False, 3),
        "ddn": (ddn(model, x, labels, steps=3), False, 3),
        "lbfgs_attack": (lbfgs_attack(model, x, targets, initial_const=1.0, search_steps=1, steps=3), True, 3),
        "deepfool": (deepfool(model, x, steps=3), False, 3),
        "jsma": (attacks.jsma(model, x, targets, gamma=0.1), True, None),
        "linf_attack": (linf_attack(model, x, eps=eps, y=labels), False, 1),
        "autoattack": (attacks.autoattack(model, x, labels, eps=eps, steps=2, attacks=("apgd-ce",)), False, 2),
    }
    functions = {n: getattr(attacks, n) for n in attacks.__all__ if inspect.isfunction(getattr(attacks, n))}
    returning = {n for n, f in functions.items() if inspect.signature(f).return_annotation == "AttackResult"}
    assert set(calls) == set(ATTACKS) - {"rp2"} == returning  # a new attack joins this test
    for name, (result, targeted, steps) in calls.items():
        assert isinstance(result, attacks.AttackResult), name
        assert result.adversarial.shape == x.shape and result.success.shape == result.norm.shape == (4,), name
        pred = model(result.adversarial).numpy().argmax(axis=1)
        np.testing.assert_array_equal(result.success, pred == targets if targeted else pred != labels, name)
        delta = (result.adversarial - x).reshape(4, -1)
        size = np.abs(delta).max(axis=1) if name == "autoattack" else np.linalg.norm(delta, axis=1)
        np.testing.assert_allclose(result.norm, np.where(result.success, size, 0.0), rtol=1e-5, err_msg=name)
        assert json.loads(json.dumps(result.settings)) == result.settings and result.settings["attack"] == name
        assert result.settings.get("steps") == steps, name
    np.testing.assert_array_equal(calls["linf_attack"][0].success, radius < eps)  # FGSM is exact on a linear model
    assert calls["autoattack"][0].settings["norm"] == "Linf" and calls["linf_attack"][0].settings["step_size"] == eps

    assert all(r.success.any() for r, _, _ in calls.values())  # the success checks above are not vacuous
    chunked = carlini_wagner_l2(model, x, labels, batch_size=3, **cw)
    assert chunked.settings == {**calls["carlini_wagner_l2"][0].settings, "batch_size": 3}
    with pytest.warns(DeprecationWarning, match=r"^attacks now return AttackResult; use \.adversarial"):
        np.testing.assert_array_equal(np.asarray(calls["linf_attack"][0]), calls["linf_attack"][0].adversarial)
