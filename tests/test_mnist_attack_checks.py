"""Defend++ beyond its tables: Fig. 7's FGSM curve, the attack-strength (gradient masking) checks,
and attacks made on a source model and scored on another (Tables 7-8)."""

import json

import keras
import numpy as np
import pytest

from blurnet_tf import rundir
from blurnet_tf.attacks.linf_gradient import linf_attack
from blurnet_tf.errors import DataError, SettingError
from blurnet_tf.evaluation.metrics import predict_classes
from blurnet_tf.evaluation.mnist_attack_suite import AttackBudget, fgsm_at, fgsm_curve, fgsm_direction, strength_checks
from blurnet_tf.experiments.mnist_robustness import MnistRobustness, _part_key
from conftest import linear_classifier_case, run_python

SMALL = AttackBudget(bim_steps=5, bim_step=0.05, fgsm_curve_eps=(0.1, 0.2, 0.5), strength_bim_eps=(0.1, 0.2))


def tiny_mlp(shape, seed, classes=3):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input(shape),
            keras.layers.Flatten(),
            keras.layers.Dense(8, activation="relu"),
            keras.layers.Dense(classes),
        ]
    )


def save_tiny_mnist_model(path, seed):
    tiny_mlp((28, 28, 1), seed, classes=10).save(path)
    return str(path)


def save_centroid_model(path, x, y):
    """A nearest-class-mean MNIST classifier (linear, no training): right often enough that the
    accuracies under attack are not all zero."""
    means = np.stack([x[y == c].reshape(-1, 784).mean(axis=0) for c in range(10)])
    model = keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    model.layers[-1].set_weights([means.T, -0.5 * (means**2).sum(axis=1)])
    model.save(path)
    return str(path)


def test_fgsm_curve_equals_fgsm_run_at_each_eps():
    rng = np.random.default_rng(0)
    x = rng.random((16, 6, 6, 1)).astype(np.float32)
    x[:, :2] = 0.0  # pixels on the box's edges: FGSM's clipping matters there
    x[:, -2:] = 1.0
    y = rng.integers(0, 3, 16)
    model, budget = tiny_mlp((6, 6, 1), 0), AttackBudget(fgsm_curve_eps=(0.05, 0.2, 0.7, 1.0))
    result = fgsm_curve(model, x, y, budget)
    expected = [
        float(np.mean(predict_classes(model, linf_attack(model, x, eps=e, y=y).adversarial) == y))
        for e in budget.fgsm_curve_eps
    ]
    assert result["eps"] == [0.05, 0.2, 0.7, 1.0] and result["accuracies"] == expected
    assert result["accuracy"] == expected[1] and result["accuracy_eps"] == 0.2  # the paper's ε
    # The images themselves, not only their accuracy: one gradient gives FGSM at every ε exactly.
    direction = fgsm_direction(model, x, y)
    for e in budget.fgsm_curve_eps:
        np.testing.assert_array_equal(fgsm_at(x, direction, e), linf_attack(model, x, eps=e, y=y).adversarial)


def test_strength_checks_pass_on_a_linear_softmax_model():
    model, x, labels, _ = linear_classifier_case()
    result = strength_checks(model, x, labels, SMALL)
    assert result["zero_gradient_fraction"] == 0.0 and result["median_gradient_l1"] > 0
    assert result["unbounded_success"] == 1.0 and result["accuracy"] == 0.0
    assert result["bim_eps"] == [0.1, 0.2] and len(result["bim_accuracies"]) == 2
    assert result["monotone"] and result["passed"]


def test_strength_checks_fail_on_a_saturated_softmax():
    # The linear model's logits scaled up until softmax is exactly one-hot (defensive distillation's
    # masking): the loss gradient is zero on every image, so BIM never moves.
    model, x, labels, _ = linear_classifier_case()
    w, b = model.layers[-1].get_weights()
    model.layers[-1].set_weights([w * 1e6, b])
    result = strength_checks(model, x, labels, SMALL)
    assert result["zero_gradient_fraction"] == 1.0 and result["median_gradient_l1"] == 0.0
    assert result["unbounded_success"] == 0.0 and result["bim_accuracies"] == [1.0, 1.0]
    assert (result["gradients_nonzero"], result["unbounded_fools_all"], result["monotone"]) == (False, False, True)
    assert not result["passed"]


def test_strength_checks_on_a_model_with_no_gradient_at_all():
    class Rounding(keras.layers.Layer):  # no gradient is defined for rounding: the tape gives None
        def call(self, x):
            import tensorflow as tf

            return tf.round(x)

    model, x, labels, _ = linear_classifier_case()
    masked = keras.Sequential([keras.Input((4, 4, 1)), Rounding(), *model.layers])
    result = strength_checks(masked, x, labels, SMALL)
    assert result["zero_gradient_fraction"] == 1.0 and not result["passed"]
    assert result["accuracy"] == float(np.mean(predict_classes(masked, x) == labels))  # the attack cannot move


@pytest.mark.parametrize(
    "field,value",
    [
        ("fgsm_curve_eps", ()),
        ("fgsm_curve_eps", (0.2, 0.1)),
        ("strength_bim_eps", (0.1, -0.1)),
        ("strength_bim_eps", (0.1, float("nan"))),
    ],
)
def test_budget_refuses_bad_grids(field, value):
    with pytest.raises(SettingError) as err:
        AttackBudget(**{field: value})
    assert err.value.field == field


def test_transfer_refuses_attacks_that_need_the_scored_model():
    for attacks in (("fgsm", "cw"), ("ddn",), ("strength_checks",)):
        with pytest.raises(SettingError) as err:
            MnistRobustness(model="a.keras", source_model="b.keras", attacks=attacks)
        assert err.value.field == "attacks"
    MnistRobustness(model="a.keras", source_model="b.keras", attacks=("clean", "fgsm", "bim", "fgsm_curve"))
    MnistRobustness(model="a.keras", attacks=("fgsm_curve", "strength_checks", "cw"))


def test_parts_written_before_the_checks_keep_their_keys():
    # The key a part had when the budget had only these nine fields (clean ... ddn).
    old_budget = dict(
        fgsm_eps=0.2,
        bim_eps=0.2,
        bim_steps=100,
        bim_step=0.01,
        cw_search=5,
        cw_steps=20,
        cw_learning_rate=0.1,
        ddn_steps=100,
        l2_budget=2.0,
    )
    settings = {"model": "m", "images": 10, "test_fraction": 0.3, "split_seed": 0}
    new = {**settings, "budget": {**old_budget, "fgsm_curve_eps": [0.1], "strength_bim_eps": [0.2]}}
    assert _part_key(new, "bim") == rundir.settings_key({**settings, "budget": old_budget})
    assert _part_key(new, "fgsm_curve") != _part_key(
        {**new, "budget": {**new["budget"], "fgsm_curve_eps": [0.3]}}, "fgsm_curve"
    )


def test_transfer_scores_attacks_made_on_the_source(tmp_path, data_dir):
    from blurnet_tf.data import load_test_split

    x, y = load_test_split(data_dir, "mnist", 0.3, 0)
    # Two different linear models, their class means taken from disjoint images past the attacked 20.
    target = save_centroid_model(tmp_path / "t.keras", x[100:600], y[100:600])
    source = save_centroid_model(tmp_path / "s.keras", x[600:1100], y[600:1100])
    x, y = x[:20], y[:20]
    attacks = ("clean", "fgsm", "bim", "fgsm_curve")

    def run(src, out, log=print):
        return MnistRobustness(model=target, source_model=src, attacks=attacks, images=20, budget=SMALL).run(
            tmp_path / out, log=log
        )

    white, same = run(None, "white"), run(target, "same")
    strip = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    assert {n: strip(r) for n, r in same.items()} == {n: strip(r) for n, r in white.items()}

    messages = []
    moved = run(source, "white", messages.append)  # same directory: the white-box parts must not be reused
    assert len(messages) == len(attacks) and not any("skipped" in m for m in messages)
    t, s = keras.saving.load_model(target), keras.saving.load_model(source)
    adv = linf_attack(s, x, eps=SMALL.fgsm_eps, y=y).adversarial
    assert moved["fgsm"]["accuracy"] == float(np.mean(predict_classes(t, adv) == y))
    assert moved["fgsm_curve"]["accuracies"][1] == moved["fgsm"]["accuracy"]  # ε 0.2 on both
    stored = json.loads((tmp_path / "white" / rundir.RESULTS_FILE).read_text())
    assert stored["source_model"] == source and set(stored["results"]) == set(attacks)
    assert json.loads((tmp_path / "same" / rundir.RESULTS_FILE).read_text())["source_model"] == target


def test_transfer_needs_the_same_test_split(tmp_path):
    target, source_dir = save_tiny_mnist_model(tmp_path / "t.keras", 0), tmp_path / "source"
    source_dir.mkdir()
    save_tiny_mnist_model(source_dir / rundir.MODEL_FILE, 1)
    split = {"dataset": "mnist", "test_fraction": 0.3, "split_seed": 1}  # the target (no record) has seed 0
    rundir.ModelRecord(legit_accuracy=0.1, test_images=3000, dataset="mnist", flags=split).write(
        source_dir / "metrics.json"
    )
    with pytest.raises(DataError, match="transfer needs one split"):
        MnistRobustness(model=target, source_model=str(source_dir), attacks=("fgsm",), images=4).run(tmp_path / "out")


@pytest.mark.slow
def test_cli_runs_the_checks_and_parses_the_grids(tmp_path):
    model = save_tiny_mnist_model(tmp_path / "m.keras", 0)
    run_python(
        "-m",
        "blurnet_tf.cli.mnist_attacks",
        f"--model={model}",
        f"--out={tmp_path / 'out'}",
        "--images=4",
        "--attacks=fgsm_curve,strength_checks",
        "--fgsm_curve_eps=0.1,0.3",
        "--strength_bim_eps=0.1,0.2",
        "--bim_steps=2",
    )
    stored = json.loads((tmp_path / "out" / rundir.RESULTS_FILE).read_text())
    assert stored["source_model"] is None and stored["budget"]["fgsm_curve_eps"] == [0.1, 0.3]
    assert stored["results"]["fgsm_curve"]["eps"] == [0.1, 0.3]
    assert stored["results"]["strength_checks"]["bim_eps"] == [0.1, 0.2]


def test_the_lisa_cnn_is_refused_as_model_or_source(tmp_path):
    from blurnet_tf.errors import SettingError

    for kwargs in (dict(model="original"), dict(model=str(tmp_path), source_model="original", attacks=("fgsm",))):
        with pytest.raises(SettingError, match="'original' is the LISA-CNN"):
            MnistRobustness(**kwargs).run(tmp_path / "out", log=lambda m: None)
