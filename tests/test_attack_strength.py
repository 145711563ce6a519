"""The attack-strength checks against cases whose answer is known: a linear classifier (every check
holds), a model that ignores its input and one whose input is rounded (gradients masked: flagged)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from blurnet_tf.evaluation.attack_strength import CHECKS, strength_checks
from blurnet_tf.evaluation.robustness_benchmark import benchmark
from test_any_model import CLASSES, SIZE, banded, sticker_mask, trained_small_model
from test_autoattack import linear_case


def test_a_linear_classifier_passes_every_pgd_check_and_transfer_from_itself_is_no_stronger():
    model, x, labels, radius = linear_case(classes=3, n=8)
    found = strength_checks(
        model,
        x,
        labels,
        eps=float(np.median(radius)),
        eps_grid=(0.25 * radius.min(), float(np.median(radius)), 2 * radius.max()),
        steps=20,
        source=model,
    )
    assert found["checks"] == {
        "gradients_nonzero": True,
        "unbounded_pgd": True,
        "monotone_eps": True,
        "transfer_weaker": True,
        "unrestricted_rp2": None,
        "monotone_rp2": None,
    }
    assert found["passed"] and found["zero_gradient_fraction"] == 0.0 and found["unbounded_pgd_success"] == 1.0
    # below every image's closed-form radius nothing breaks; above every one, everything does
    assert found["pgd_success"][0] == 0.0 and found["pgd_success"][-1] == 1.0
    assert found["transfer_success"] == found["whitebox_success"]


def test_checks_with_nothing_to_attack_are_not_run_and_bad_arguments_are_named():
    model, x, labels, _ = linear_case(classes=3, n=6)
    wrong = strength_checks(model, x, 1 - labels, steps=3)  # every image misclassified: nothing to attack
    assert wrong["correct"] == 0 and wrong["checks"]["unbounded_pgd"] is None and wrong["passed"]
    at_target = strength_checks(model, x[labels == 1], labels[labels == 1], steps=3, targets=[1])
    assert at_target["checks"]["unrestricted_rp2"] is None  # every image already at the only target
    for kwargs, match in (
        ({"x": x[:0], "y": labels[:0]}, "images: expected at least one image"),
        ({"x": x, "y": labels[:-1]}, "labels: expected 6 integer class indices"),
        ({"x": x, "y": labels, "source": linear_case(classes=2)[0]}, "source: expected logits over"),
        ({"x": x, "y": labels, "steps": 0}, r"steps: expected an integer >= 1, got 0"),
        ({"x": x, "y": labels, "eps": -0.1}, r"eps: expected a finite number > 0, got -0.1"),
        ({"x": x, "y": labels, "eps_grid": (0.1, float("nan"))}, "eps_grid: expected finite"),
        ({"x": x, "y": labels, "rp2_lambda": -1.0}, "rp2_lambda: expected a finite number >= 0"),
    ):
        with pytest.raises(ValueError, match=match):
            strength_checks(model, **{"steps": 2, **kwargs})


def test_a_blind_model_and_a_rounded_input_are_flagged_not_counted_as_robust():
    x, y = banded(12, seed=4)
    blind = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten(), keras.layers.Dense(CLASSES)])
    blind.layers[-1].set_weights(
        [np.zeros((SIZE * SIZE * 3, CLASSES), np.float32), 5 * np.eye(CLASSES)[2].astype(np.float32)]
    )
    found = strength_checks(blind, x, np.full(12, 2), steps=5)
    assert not found["passed"] and found["zero_gradient_fraction"] == 1.0
    assert not found["checks"]["gradients_nonzero"] and not found["checks"]["unbounded_pgd"]

    model = trained_small_model()
    rounded = lambda images: model(tf.round(images * 4) / 4, training=False)  # noqa: E731 - a plain callable
    masked = strength_checks(rounded, x, y, steps=5)
    assert masked["checks"]["gradients_nonzero"] is False and not masked["passed"]


def test_transfer_from_a_weaker_source_holds_and_transfer_beating_a_masked_white_box_fails():
    model, x, labels, radius = linear_case(classes=3, n=8)
    eps = 2 * float(radius.max())  # white-box PGD breaks every image here
    unrelated = linear_case(classes=3, n=8, seed=5)[0]  # another linear model: its gradients point elsewhere
    weaker = strength_checks(model, x, labels, eps=eps, eps_grid=(eps,), steps=20, source=unrelated)
    assert weaker["whitebox_success"] == 1.0 and weaker["transfer_success"] < 1.0 - 1 / 8
    assert weaker["checks"]["transfer_weaker"] is True

    # 8-bit input quantisation: no gradient reaches the input, so white-box PGD cannot move the images,
    # while PGD on the unquantised model transfers to it: the check must fail, by more than one image.
    quantised = lambda images: model(tf.round(images * 255) / 255)  # noqa: E731 - a plain callable
    y = np.argmax(quantised(x).numpy(), 1)
    masked = strength_checks(quantised, x, y, eps=eps, eps_grid=(eps / 2, eps), steps=20, source=model)
    assert masked["whitebox_success"] == 0.0 and masked["transfer_success"] >= 0.5, masked
    assert masked["checks"]["transfer_weaker"] is False and not masked["passed"]


@pytest.mark.slow
def test_benchmark_gives_autoattack_and_one_record_per_check_on_another_model():
    model = trained_small_model()
    x, y = banded(16, seed=11)
    records = benchmark(
        model,
        x,
        y,
        threat_models=("clean", "linf", "autoattack", "checks"),
        targets=[1, 3],
        mask=sticker_mask(),
        linf_eps=0.05,
        linf_steps=10,
        linf_step=0.01,
        linf_random_start=False,
        square_queries=50,
        check_rp2_epochs=6,
        source=model,
    )
    values = {(r["threat_model"], r["attack"], r["metric"]): r for r in records}
    clean = values[("clean", "none", "accuracy")]["value"]
    aa = values[("autoattack", "apgd-ce+apgd-t+square", "robust_accuracy")]
    assert aa["value"] <= clean and aa["interval"][0] <= aa["value"] <= aa["interval"][1]
    assert "start=image" in values[("linf", "pgd", "robust_accuracy")]["budget"]
    held = {r["attack"]: r["value"] for r in records if r["metric"] == "check_held"}
    assert set(held) == set(CHECKS) and set(held.values()) <= {0.0, 1.0}
    assert values[("checks", "all", "checks_passed")]["value"] == float(all(held.values()))
    assert [r["budget"] for r in records if r["metric"] == "rp2_success"] == [
        "lambda=0.002, epochs=2",
        "lambda=0.002, epochs=6",
    ]


@pytest.mark.slow
def test_the_robustness_profile_benchmarks_every_row_and_the_table_is_recomputed_from_its_records(tmp_path):
    import dataclasses

    from blurnet_tf.pipeline.plan import PROFILES, build_plan
    from blurnet_tf.pipeline.robustness_steps import RobustnessBudget
    from blurnet_tf.pipeline.ray_executor import run_all
    from blurnet_tf.reports import flat_records
    from blurnet_tf.reports.robustness_report import ADAPTIVE, PREFIX, adaptive_table, stored_table, table, write_report

    budget = RobustnessBudget(
        rows=("baseline", "tv_1e-4"),
        train_epochs=1,
        square_queries=20,
        check_rp2_epochs=3,
        check_targets=(12,),
        max_train_images=256,
        crosscheck_restarts=2,
    )
    profile = dataclasses.replace(PROFILES["robustness"], budget=budget)
    steps = build_plan(profile, tmp_path / "runs")
    assert [s.name for s in steps] == [
        "train/baseline",
        "train/tv_1e-4",
        "train/baseline_holdout",
        "benchmark/baseline",
        "benchmark/tv_1e-4",
        "benchmark/pixel_deflection",
        "crosscheck/baseline",
        "adaptive/tv_1e-4/adaptive_own",
    ]
    run_all(steps, jobs=2)
    write_report(profile, tmp_path / "runs", tmp_path / "results", 0.0, {}, [s.out for s in steps])
    out = tmp_path / "results" / "robustness"
    records = flat_records.read(out / "results.json")
    assert {r.model for r in records} == {"baseline", "tv_1e-4", "pixel_deflection"}
    held = {
        (r.model, r.attack): r.value for r in records if r.experiment == PREFIX + "checks" and r.metric == "check_held"
    }
    assert held[("baseline", "transfer_weaker")] is None  # not run: the baseline is its own source
    assert stored_table(out) == table(records) and table(records) in (out / "REPORT.md").read_text()
    adaptive = [r for r in records if r.experiment == ADAPTIVE]
    assert {(r.model, r.variant) for r in adaptive} == {("tv_1e-4", "adaptive own")}
    assert adaptive_table(records) in (
        out / "REPORT.md"
    ).read_text() and "| tv_1e-4 | adaptive own | " in adaptive_table(records)
    assert (
        "Second implementation on `baseline`: cleverhans PGD (eps=0.0313725, steps=50"
        in (out / "REPORT.md").read_text()
    )
    pgd = [r for r in records if r.experiment == PREFIX + "linf" and r.metric == "asr"]
    assert {r.paper for r in pgd if r.model != "pixel_deflection"} == {1.0} and "step=0.01, start=image" in pgd[
        0
    ].variant
    import json

    claims = json.loads((out / "tables.json").read_text())["claims"]
    assert [c[0].split(" (")[0] for c in claims] == [
        "PGD",
        "AutoAttack-strength L∞ at ε 8/255 breaks every model",
        "No BlurNet defence weakens the attacks",
        "The adaptive attacks of Table III / V are at full strength",
    ]
    assert all("pixel_deflection" not in c[2] for c in claims)


def test_one_pgd_step_from_the_image_takes_the_step_it_is_given_not_epsilon():
    from blurnet_tf.attacks import linf_attack

    model, x, labels, _ = linear_case(classes=2, n=4)
    small = linf_attack(model, x, eps=0.1, steps=1, step_size=0.01, y=labels).adversarial
    full = linf_attack(model, x, eps=0.1, steps=1, y=labels).adversarial  # FGSM
    np.testing.assert_allclose(np.abs(small - x).max(axis=(1, 2, 3)), 0.01, atol=1e-6)
    np.testing.assert_allclose(np.abs(full - x).max(axis=(1, 2, 3)), 0.1, atol=1e-6)
