"""The accuracy-robustness frontiers: interpolation at a fixed accuracy (hand-computed), the paired
bootstrap (exact where nothing varies), the curves read from flat records, and the tradeoff profile
end to end at a seconds-scale budget."""

import dataclasses

import numpy as np
import pytest

from blurnet_tf.evaluation import frontier
from blurnet_tf.reports import flat_records
from blurnet_tf.reports import tradeoff_analysis as analysis


def test_interpolation_weights_are_linear_between_the_bracketing_models_in_accuracy_order():
    w = frontier.interpolation_weights([0.9, 0.8, 1.0], [0.85, 0.8, 0.95, 1.0, 0.79, 1.01])
    np.testing.assert_allclose(w[:, 0], [0.5, 0.5, 0.0])  # halfway between 0.8 and 0.9
    np.testing.assert_allclose(w[:, 1], [0.0, 1.0, 0.0])  # on a model
    np.testing.assert_allclose(w[:, 2], [0.5, 0.0, 0.5])
    np.testing.assert_allclose(w[:, 3], [0.0, 0.0, 1.0])
    assert np.isnan(w[:, 4]).all() and np.isnan(w[:, 5]).all()  # no extrapolation
    cliff = frontier.interpolation_weights([0.99, 0.95, 0.14], [0.97, 0.85, 0.95, 0.14])
    np.testing.assert_allclose(cliff[:, 0], [0.5, 0.5, 0.0])
    assert np.isnan(cliff[:, 1]).all()  # across a collapse from 95% to 14%: not a measurement
    np.testing.assert_allclose(cliff[:, 2], [0.0, 1.0, 0.0])
    np.testing.assert_allclose(cliff[:, 3], [0.0, 0.0, 1.0])


def test_a_gap_of_exactly_max_gap_is_interpolated_and_only_a_wider_one_is_a_collapse():
    # 0.5, 0.75 and 0.125 are exact in binary: the gap is max_gap itself, not a rounding away from it.
    np.testing.assert_allclose(frontier.interpolation_weights([0.5, 0.75], [0.625], max_gap=0.25)[:, 0], [0.5, 0.5])
    assert np.isnan(frontier.interpolation_weights([0.5, 0.75], [0.625], max_gap=0.125)).all()


def curve(asr_per_point, targets=4, victims=10):
    """success [P, T, V] whose every target has the given ASR (a multiple of 1/victims)."""
    return np.array(
        [[[1] * round(a * victims) + [0] * (victims - round(a * victims))] * targets for a in asr_per_point]
    )


def test_a_curve_with_identical_seeds_and_all_or_nothing_targets_is_exact_with_a_zero_width_interval():
    # Every victim falls at 100% accuracy, none at 80% (nothing to resample): 0.5 at 90%.
    success = np.stack([curve([0.0, 1.0])] * 2)
    acc = np.array([[0.8, 1.0]] * 2)
    (cell,) = frontier.curve_at(success, acc, [0.9], max_gap=1.0)
    assert cell == pytest.approx({"mean": 0.5, "lo": 0.5, "hi": 0.5, "seeds": 2})
    base = (np.stack([curve([0.0, 1.0, 1.0])] * 2), np.array([[0.8, 0.9, 1.0]] * 2))
    d85, d90, d70 = frontier.paired_difference_at((success, acc), base, [0.85, 0.9, 0.7], max_gap=1.0)
    assert frontier.curve_at(success, acc, [0.9]) == [None]  # 80% to 100%: wider than MAX_GAP
    assert d85 == pytest.approx({"mean": 0.25 - 0.5, "lo": -0.25, "hi": -0.25, "seeds": 2})
    assert d90["mean"] == pytest.approx(0.5 - 1.0)
    assert d70 is None  # below both curves


def test_the_paired_interval_is_on_the_difference_and_seeds_are_averaged_after_interpolation():
    rng = np.random.default_rng(0)
    success = (rng.random((3, 3, 17, 40)) < 0.3).astype(int)
    acc = np.array([[0.8, 0.9, 1.0], [0.82, 0.88, 0.99], [0.81, 0.93, 0.98]])
    same = frontier.paired_difference_at((success, acc), (success, acc), [0.85, 0.95], max_gap=1.0)
    assert all(d["mean"] == d["lo"] == d["hi"] == 0.0 for d in same)  # a curve against itself: exactly 0
    (cell,) = frontier.curve_at(success, acc, [0.85], n_boot=500, max_gap=1.0)
    by_hand = np.mean([np.interp(0.85, acc[s], success[s].mean(axis=-1).mean(axis=-1)) for s in range(3)])
    assert cell["mean"] == pytest.approx(by_hand) and cell["lo"] <= by_hand <= cell["hi"]
    with pytest.raises(ValueError, match="same seeds, targets and victims"):
        frontier.paired_difference_at((success, acc), (success[:, :, :5], acc), [0.9])


def test_an_accuracy_counts_for_a_seed_only_where_every_curve_of_that_seed_reaches_it():
    # Seed 1's baseline spans 90-100% only: at 85% only seed 0 has both curves. By default every
    # seed must (None); with min_seeds=1 the difference is seed 0's alone: 0 - 0.5 at 85%.
    defence = (np.stack([curve([0.0, 0.0])] * 2), np.array([[0.8, 1.0]] * 2))
    baseline = (np.stack([curve([0.0, 1.0]), curve([1.0, 1.0])]), np.array([[0.8, 0.9], [0.9, 1.0]]))
    assert frontier.paired_difference_at(defence, baseline, [0.85], max_gap=1.0) == [None]
    (d,) = frontier.paired_difference_at(defence, baseline, [0.85], max_gap=1.0, min_seeds=1)
    assert d == pytest.approx({"mean": -0.5, "lo": -0.5, "hi": -0.5, "seeds": 1})
    assert frontier.curve_at(*baseline, [0.85], max_gap=1.0) == [None]


def rows(family, point, seed, legit, asr, targets=(1, 2)):
    b = flat_records.RecordBuilder("abc", False)
    b.add(analysis.EXPERIMENT, family, "legit_accuracy", legit, seed, variant=point, images=1002)
    success = [[1] * round(40 * asr) + [0] * (40 - round(40 * asr))] * len(targets)
    b.rp2(
        analysis.EXPERIMENT,
        family,
        {
            "rows": [
                {"lambda": 0.002, "target": t, "asr": asr, "targeted": 0.0, "l2": 0.3, "success": s}
                for t, s in zip(targets, success)
            ],
            "aggregate": {"lambda=0.002": {"avg_asr": asr, "worst_asr": asr, "avg_targeted": 0.0, "l2": 0.3}},
        },
        seed,
        variant=point,
    )
    return b.rows


def test_curves_pair_seeds_with_the_baseline_order_points_and_start_knob_zero_families_at_its_model():
    records = []
    for seed in (0, 1):
        records += rows("baseline", "step20", seed, 0.88, 0.0) + rows("baseline", "epoch10", seed, 0.99, 1.0)
        records += rows("baseline", "epoch2", seed, 0.97, 1.0)
        records += rows("tv", "alpha1", seed, 0.86, 0.0) + rows("tv", "alpha0.1", seed, 0.95, 0.0)
    records += rows("tv", "alpha0.5", 0, 0.9, 0.1)  # seed 1 lacks it: the point is dropped
    records += rows("conv_7", "alpha1", 0, 0.8, 0.3) + rows("conv_7", "alpha3", 0, 0.7, 0.3)
    records += rows("lonely", "x1", 5, 0.8, 0.3) + rows("lonely", "x2", 5, 0.9, 0.3)  # no baseline seed 5
    c = analysis.curves(records, zero_is_baseline=("tv",))
    assert list(c) == ["baseline", "conv_7", "tv"]
    assert c["baseline"]["points"] == ["step20", "epoch2", "epoch10"]
    assert c["tv"]["points"] == ["baseline epoch10", "alpha0.1", "alpha1"] and c["tv"]["seeds"] == [0, 1]
    assert c["conv_7"]["seeds"] == [0] and c["tv"]["success"].shape == (2, 3, 2, 40)
    np.testing.assert_allclose(c["tv"]["accuracy"][1], [0.99, 0.95, 0.86])
    comparison = analysis.compare(c, n_boot=200)
    at85, at90, at95, _ = comparison["tv"]
    # tv is 0 from 86% to 95%; the baseline between 88% (0) and 97% (1): 2/9 at 90%, 7/9 at 95%.
    assert at85 is None  # below both curves' lowest model
    assert at90[0]["mean"] == 0.0 and at90[1]["mean"] == pytest.approx(2 / 9)
    assert at90[2] == pytest.approx({"mean": -2 / 9, "lo": -2 / 9, "hi": -2 / 9, "seeds": 2})
    assert at95[2]["mean"] == pytest.approx(-7 / 9)
    assert comparison["conv_7"] == [None] * 4  # its curve spans 70-80%
    verdicts = {claim.split()[0]: (v, e) for claim, v, e in analysis.claims(comparison, c)}
    assert verdicts["tv"][0] == "held" and verdicts["conv_7"][0] == "not measured"
    assert "70.0-80.0% reached by every seed" in verdicts["conv_7"][1]


def test_merging_a_part_replaces_its_own_models_and_keeps_the_other_parts():
    old = rows("tv", "alpha1", 0, 0.8, 0.05) + rows("conv_7", "alpha1", 0, 0.8, 0.3)
    new = rows("tv", "alpha1", 0, 0.7, 0.5)
    merged = analysis.merge(old, new)
    assert {(r.model, r.value) for r in merged if r.metric == "legit_accuracy"} == {("conv_7", 0.8), ("tv", 0.7)}


@pytest.mark.slow
def test_the_tradeoff_profile_runs_end_to_end_and_its_table_is_recomputed_from_its_records(tmp_path):
    from blurnet_tf.pipeline.plan import PROFILES, build_plan
    from blurnet_tf.pipeline.ray_executor import run_all
    from blurnet_tf.pipeline.tradeoff_steps import Frontier, TradeoffBudget
    from blurnet_tf.reports.tradeoff_report import write_report

    budget = TradeoffBudget(
        frontiers=(Frontier("tv", "tv_1e-4", "alpha", ("100",)),),
        seeds=(0, 1),
        train_epochs=1,
        attack_epochs=2,
        baseline_steps=(1,),
        targets="5,12",
        max_train_images=256,
    )
    profile = dataclasses.replace(PROFILES["tradeoff"], budget=budget)
    steps = build_plan(profile, tmp_path / "runs")
    assert [s.name for s in steps if s.stage == "train"] == [
        "train/baseline/seed0",
        "train/baseline/seed1",
        "train/tv/alpha100/seed0",
        "train/tv/alpha100/seed1",
    ]
    run_all(steps, jobs=2)
    write_report(profile, tmp_path / "runs", tmp_path / "results", 0.0, {}, [s.out for s in steps])
    out = tmp_path / "results" / "tradeoff"
    records = flat_records.read(out / "results.json")
    legit = {(r.model, r.variant, r.seed) for r in records if r.metric == "legit_accuracy"}
    assert legit == {
        (f, p, s) for s in (0, 1) for f, p in (("baseline", "step1"), ("baseline", "epoch1"), ("tv", "alpha100"))
    }
    assert {r.target for r in records if r.metric == "asr"} == {5, 12}
    assert (out / "figures" / "frontiers.png").is_file() and (out / "figures" / "frontiers.pdf").is_file()
    report = (out / "REPORT.md").read_text()
    c = analysis.curves(records, ("tv",))
    assert analysis.table(analysis.compare(c), c, "avg_asr") in report
    # A second part (another family) keeps this part's records.
    write_report(profile, tmp_path / "empty", tmp_path / "results", 0.0, {}, [])
    assert flat_records.read(out / "results.json") == records


@pytest.mark.slow
def test_the_longtrain_profile_logs_the_penalty_share_and_attacks_every_kept_epoch(tmp_path):
    from blurnet_tf.pipeline.longtrain_steps import LongTraining
    from blurnet_tf.pipeline.plan import PROFILES, build_plan
    from blurnet_tf.pipeline.ray_executor import run_all
    from blurnet_tf.reports.longtrain_report import points, write_report

    budget = LongTraining(
        rows=("baseline", "tv_1e-4"),
        epochs=3,
        attacked_epochs=(1,),
        attack_epochs=2,
        targets="5,12",
        max_train_images=256,
    )
    profile = dataclasses.replace(PROFILES["longtrain"], budget=budget)
    steps = build_plan(profile, tmp_path / "runs")
    run_all(steps, jobs=2)
    write_report(profile, tmp_path / "runs", tmp_path / "results", 0.0, {}, [s.out for s in steps])
    out = tmp_path / "results" / "longtrain"
    records = flat_records.read(out / "results.json")
    for row in ("baseline", "tv_1e-4"):
        assert [p[0] for p in points(records, row)] == [1, 3]
        share = {r.variant: r.value for r in records if r.model == row and r.metric == "penalty_loss_share"}
        assert sorted(share) == ["epoch1", "epoch2", "epoch3"]
        assert all(v == 0.0 for v in share.values()) if row == "baseline" else all(0 < v < 1 for v in share.values())
    assert (out / "figures" / "long_training.png").is_file() and "| tv_1e-4 | 3 |" in (out / "REPORT.md").read_text()


def test_at_a_models_own_accuracy_the_bootstrap_is_the_seed_statistics_one():
    """Read exactly at a model, the frontier's interval must be evaluation.intervals' for that model (the
    same draws of seeds, targets and victims): a wrong axis or seed pairing in the bootstrap breaks this."""
    from blurnet_tf.evaluation import intervals

    rng = np.random.default_rng(3)
    success = (rng.random((3, 4, 17, 40)) < rng.random((3, 4, 1, 1))).astype(int)  # every seed and model differs
    acc = np.array([[0.80, 0.86, 0.90, 0.97], [0.81, 0.87, 0.90, 0.96], [0.79, 0.85, 0.90, 0.98]])
    base = (rng.random((3, 3, 17, 40)) < 0.4).astype(int)
    base_acc = np.array([[0.84, 0.90, 0.95], [0.83, 0.90, 0.96], [0.85, 0.90, 0.94]])
    for statistic in ("avg_asr", "worst_asr"):
        (cell,) = frontier.curve_at(success, acc, [0.90], statistic)
        reference = intervals.asr_interval(success[:, 2], statistic)
        assert cell == pytest.approx(reference, abs=1e-9)
        (diff,) = frontier.paired_difference_at((success, acc), (base, base_acc), [0.90], statistic)
        assert diff == pytest.approx(
            {**intervals.paired_difference(success[:, 2], base[:, 1], statistic), "seeds": 3}, abs=1e-9
        )


def test_models_of_equal_accuracy_share_their_weight_whatever_their_order():
    w = frontier.interpolation_weights([0.9, 0.9, 0.8], [0.85, 0.9])
    np.testing.assert_allclose(w[:, 0], [0.25, 0.25, 0.5])
    np.testing.assert_allclose(w[:, 1], [0.5, 0.5, 0.0])
