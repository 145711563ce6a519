"""AutoAttack-strength L∞ (ART's APGD-CE, APGD-T, Square with AutoAttack's settings) against the closed
form: a linear classifier's smallest L∞ perturbation that crosses its boundary is |margin| / ||w_0 - w_1||_1."""

import keras
import numpy as np
import pytest

from blurnet_tf.attacks import autoattack


def linear_case(classes=2, n=6, seed=0, norm="Linf"):
    """Images near 0.5 (far from the box edges) and each one's critical radius towards the other of the first
    two classes: margin / ‖w_y − w_other‖₁ in L∞, margin / ‖w_y − w_other‖₂ in L2 (the dual norms)."""
    rng = np.random.default_rng(seed)
    model = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(classes)])
    w = rng.normal(size=(64, classes)).astype(np.float32)
    bias = np.zeros(classes, np.float32)
    if classes > 2:
        bias[2:] = -100.0  # the other classes never win: the two-class closed form holds
    model.layers[-1].set_weights([w, bias])
    x = (0.5 + 0.01 * rng.normal(size=(n, 8, 8, 1))).astype(np.float32)
    logits = model(x).numpy()
    labels = logits[:, :2].argmax(axis=1)
    other = 1 - labels
    margin = logits[np.arange(n), labels] - logits[np.arange(n), other]
    direction = w[:, labels] - w[:, other]
    dual = np.abs(direction).sum(axis=0) if norm == "Linf" else np.linalg.norm(direction, axis=0)
    return model, x, labels, margin / dual


# Square searches without gradients: it is given twice the radius and 2,000 queries (8x8 images: ART 1.20's
# Square fails on 4x4 ones, whose first square covers the whole image).
@pytest.mark.parametrize("attacks, slack", [(("apgd-ce",), 1.05), (("apgd-t",), 1.05), (("square",), 2.0)])
def test_each_attack_breaks_just_above_the_closed_form_radius_and_nothing_breaks_below_it(attacks, slack):
    model, x, labels, radius = linear_case(classes=3)
    eps = float(radius.max()) * slack
    assert eps < 0.4  # inside the box: the closed form ignores clipping
    above = autoattack(model, x, labels, norm="Linf", eps=eps, attacks=attacks, square_queries=2000)
    assert above.success.all(), (attacks, radius, above.norm)
    assert np.all(above.norm <= eps + 1e-6) and np.all(above.norm >= radius - 1e-5)
    below = autoattack(
        model, x, labels, norm="Linf", eps=float(radius.min()) * 0.95, attacks=attacks, square_queries=200
    )
    assert not below.success.any() and not below.norm.any()
    np.testing.assert_array_equal(below.adversarial, x)


def test_an_image_one_attack_broke_stays_broken_when_a_later_attack_fails_on_it():
    """ε between the radii: APGD-CE breaks the images whose radius is below ε; APGD-T and Square then run on
    the rest and fail. The result is the worst case over the attacks, not the last attack's."""
    model, x, labels, radius = linear_case(classes=3, n=8, seed=3)
    r = np.sort(radius)
    gap = int(np.argmax(r[1:] / r[:-1]))  # ε in the widest gap between two radii
    eps = float(np.sqrt(r[gap] * r[gap + 1]))
    breakable = radius < eps
    assert r[gap + 1] / r[gap] > 1.1 and 0 < breakable.sum() < len(x)
    found = autoattack(model, x, labels, norm="Linf", eps=eps, square_queries=200)
    np.testing.assert_array_equal(found.success, breakable)
    assert np.all(found.norm[breakable] > 0) and np.all(found.norm <= eps + 1e-6)
    assert (np.argmax(model(found.adversarial).numpy(), 1) != labels).tolist() == breakable.tolist()
    np.testing.assert_array_equal(found.adversarial[~breakable], x[~breakable])


# Square's L2 search on 8x8 grey images breaks every image at 3x the radius (2x: 5 of 6 at 5,000 queries).
@pytest.mark.parametrize("attacks, slack", [(("apgd-ce",), 1.05), (("apgd-t",), 1.05), (("square",), 3.0)])
def test_l2_autoattack_breaks_just_above_the_closed_form_l2_radius_and_nothing_below_it(attacks, slack):
    """RobustBench's L2 threat model through ART's L2 APGD and Square, against the linear model's exact radii."""
    model, x, labels, radius = linear_case(classes=3, norm="L2")
    eps = float(radius.max()) * slack
    w = model.layers[-1].get_weights()[0]
    direction = w[:, labels] - w[:, 1 - labels]  # [64, N]: the optimal step is along it
    peak = 1.05 * radius * np.abs(direction).max(axis=0) / np.linalg.norm(direction, axis=0)
    assert peak.max() < 0.45  # the optimal step just past each radius stays inside the box: reachable
    above = autoattack(model, x, labels, norm="L2", eps=eps, attacks=attacks, square_queries=2000)
    assert above.success.all(), (attacks, radius, above.norm)
    assert np.all(above.norm <= eps + 1e-5) and np.all(above.norm >= radius - 1e-5)
    below = autoattack(model, x, labels, norm="L2", eps=float(radius.min()) * 0.95, attacks=attacks, square_queries=200)
    assert not below.success.any() and not below.norm.any()
    with pytest.raises(ValueError, match="norm: unknown 'L1'"):
        autoattack(model, x, labels, norm="L1")


@pytest.mark.parametrize(
    "change, match",
    [
        ({"eps": np.float32(0.03)}, None),  # a NumPy radius is a radius
        ({"eps": True}, "eps: expected a positive number"),
        ({"eps": 5.0}, r"eps: expected a positive number <= 1 \(images in \[0, 1\]\)"),
        ({"steps": 0}, "steps: expected an integer >= 1, got 0"),
        ({"square_queries": 0}, "square_queries: expected an integer >= 1"),
        ({"target_classes": 0}, "target_classes: expected an integer >= 1"),
        ({"attacks": ()}, "attacks: expected a non-empty sequence"),
        ({"attacks": "square"}, "attacks: expected a non-empty sequence"),
        ({"seed": "a"}, "seed: expected an integer"),
        ({"x": "uint8"}, r"x: expected a float array \[N, H, W, C\]"),
        ({"x": "nan"}, r"x: expected finite values in \[0, 1\]"),
        ({"y": "short"}, "y: expected 6 integer class indices >= 0"),
        ({"y": "beyond"}, r"y: expected classes 0..2, got up to 7"),
        ({"x": "empty"}, r"x: expected at least one image"),
    ],
)
def test_autoattack_refuses_what_would_run_nothing_or_the_wrong_thing(change, match):
    """The second sweep's cases (issue 43): each ran silently (nothing attacked, every image "robust") or failed
    deep inside ART; now one ValueError naming the argument, before any attack."""
    model, x, labels, _ = linear_case(classes=3)
    kwargs = {"eps": 0.01, "steps": 1, "square_queries": 1, "attacks": ("apgd-ce",), "seed": 0}
    kwargs.update({k: v for k, v in change.items() if k not in ("x", "y")})
    x = {"uint8": (x * 255).astype(np.uint8), "nan": np.where(x > 0.5, np.nan, x), "empty": x[:0]}.get(
        change.get("x"), x
    )
    labels = {"short": labels[:3], "beyond": np.full_like(labels, 7)}.get(change.get("y"), labels)
    if match is None:
        assert autoattack(model, x, labels, **kwargs).success.shape == (len(x),)
        return
    with pytest.raises(ValueError, match=match):
        autoattack(model, x, labels, **kwargs)


def test_the_deprecated_autoattack_linf_warns_and_is_autoattack_in_linf():
    from blurnet_tf.attacks import autoattack_linf

    model, x, labels, radius = linear_case()
    eps = float(np.median(radius))
    with pytest.warns(DeprecationWarning, match=r"autoattack_linf\(\) is deprecated .* norm='Linf'"):
        old = autoattack_linf(model, x, labels, eps=eps, steps=5, attacks=("apgd-ce",))
    new = autoattack(model, x, labels, norm="Linf", eps=eps, steps=5, attacks=("apgd-ce",))
    np.testing.assert_array_equal(old.adversarial, new.adversarial)
    np.testing.assert_array_equal(old.success, new.success)
