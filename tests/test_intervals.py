"""The hierarchical bootstrap behind every interval and claim verdict: hand-made cases."""

import numpy as np
import pytest

from blurnet_tf.evaluation.intervals import accuracy_interval, agrees, asr_interval, paired_difference, verdict


def test_no_variation_gives_a_point_interval():
    success = np.zeros((3, 17, 40))
    success[:, :5] = 1  # 5 of 17 targets always succeed, on every seed and victim
    r = asr_interval(success)
    assert r["mean"] == pytest.approx(5 / 17)
    assert 0 < r["lo"] <= r["mean"] <= r["hi"] < 1  # only the target draw varies
    assert asr_interval(np.ones((2, 17, 40)))["lo"] == 1.0
    worst = asr_interval(success, "worst_asr")
    assert worst["mean"] == 1.0 and worst["hi"] == 1.0


def test_more_seeds_and_victims_narrow_the_interval():
    rng = np.random.default_rng(0)
    few = (rng.random((2, 17, 10)) < 0.3).astype(float)
    many = (rng.random((6, 17, 40)) < 0.3).astype(float)
    width = lambda r: r["hi"] - r["lo"]  # noqa: E731
    assert width(asr_interval(many)) < width(asr_interval(few))
    assert asr_interval(many)["lo"] < 0.3 < asr_interval(many)["hi"]


def test_paired_difference_of_a_row_with_itself_is_exactly_zero_and_a_shift_is_found():
    rng = np.random.default_rng(1)
    a = (rng.random((3, 17, 40)) < 0.4).astype(float)
    same = paired_difference(a, a)
    assert same == {"mean": 0.0, "lo": 0.0, "hi": 0.0}
    assert verdict(same, -1) == "inconclusive"
    b = a.copy()
    b[:, :, :20] = 1.0  # b is attacked at least as often as a on every victim
    d = paired_difference(a, b)
    assert d["hi"] < 0 and verdict(d, -1) == "held" and verdict(d, +1) == "not held"
    with pytest.raises(ValueError):
        paired_difference(a, a[:2])


def test_accuracy_interval_and_agreement():
    r = accuracy_interval([0.98, 0.98, 0.98], 1000)
    assert r["lo"] < 0.98 < r["hi"] and r["hi"] - r["lo"] < 0.03  # binomial width of 3 x 1000 images
    assert agrees(r, 0.98) and not agrees(r, 0.91) and not agrees(r, None)


def test_wilson_interval_by_hand():
    from blurnet_tf.evaluation.intervals import wilson

    lo, hi = wilson(5, 10)  # (p + z²/2n ± z sqrt(p(1-p)/n + z²/4n²)) / (1 + z²/n), z = 1.96
    assert (lo, hi) == pytest.approx((0.2366, 0.7634), abs=1e-4)
    assert all(v != v for v in wilson(0, 0))  # no images: NaN


@pytest.mark.parametrize("hits, victims", [(20, 40), (6, 20)])
def test_with_one_seed_and_one_target_the_interval_is_the_binomial_of_the_victims(hits, victims):
    """Nothing but the victims is drawn: each replicate is Binomial(victims, p) / victims, so the
    95% percentile interval is that binomial's 2.5% and 97.5% quantiles (scipy), within half a victim."""
    from scipy import stats

    success = np.zeros((1, 1, victims))
    success[..., :hits] = 1
    r = asr_interval(success, n_boot=20000)
    lo, hi = stats.binom.ppf([0.025, 0.975], victims, hits / victims) / victims
    assert r["lo"] == pytest.approx(lo, abs=0.5 / victims) and r["hi"] == pytest.approx(hi, abs=0.5 / victims)


def test_the_l2_interval_draws_the_items_within_each_seed_and_the_seeds_themselves():
    from blurnet_tf.evaluation.intervals import values_interval

    # Identical seeds of items 0..9: a replicate is the mean of 3 x 10 items drawn with replacement,
    # about normal: 4.5 ± 1.96 sd / sqrt(30), sd² = (10² - 1) / 12 (discrete uniform).
    r = values_interval(np.tile(np.arange(10.0), (3, 1)))
    half = 1.96 * np.sqrt(99 / 12 / 30)
    assert r["mean"] == 4.5
    assert r["lo"] == pytest.approx(4.5 - half, abs=0.1) and r["hi"] == pytest.approx(4.5 + half, abs=0.1)
    # Constant items, two different seeds: only the seed draw varies, {0, 0.5, 1} with 1/4, 1/2, 1/4.
    r = values_interval(np.array([[0.0] * 5, [1.0] * 5]))
    assert (r["mean"], r["lo"], r["hi"], r["seeds"]) == (0.5, 0.0, 1.0, 2)


def test_accuracy_interval_draws_every_seed():
    # On a million images the binomial adds almost nothing: the seed draw spans 0.5 (both draws the
    # first seed, p = 1/4) to 1.0 (both the second, p = 1/4).
    r = accuracy_interval([0.5, 1.0], 10**6)
    assert r["mean"] == 0.75 and r["lo"] == pytest.approx(0.5, abs=0.005) and r["hi"] == 1.0


@pytest.mark.parametrize("hits, n", [(2, 10), (0, 10), (10, 10), (7, 30)])
def test_wilson_interval_against_its_closed_form_on_asymmetric_counts(hits, n):
    """5 of 10 is symmetric and cannot tell hits from misses; 0 hits is an interval, not NaN."""
    from scipy import stats

    from blurnet_tf.evaluation.intervals import wilson

    z, p = stats.norm.ppf(0.975), hits / n
    centre, half = p + z**2 / (2 * n), z * np.sqrt(p * (1 - p) / n + z**2 / (4 * n**2))
    assert wilson(hits, n) == pytest.approx([(centre - half) / (1 + z**2 / n), (centre + half) / (1 + z**2 / n)])


def test_an_interval_touching_zero_is_inconclusive_either_way():
    for lo, hi in ((0.0, 0.3), (-0.3, 0.0), (0.0, 0.0)):
        assert verdict({"lo": lo, "hi": hi}, +1) == verdict({"lo": lo, "hi": hi}, -1) == "inconclusive"


def test_a_paper_number_on_the_end_of_our_interval_agrees():
    from blurnet_tf import paper

    every_victim = asr_interval(np.ones((3, 1, 40)))  # PGD breaks everything on every seed: [1, 1]
    assert agrees(every_victim, paper.TABLE4["asr"])  # the paper's 100%
    assert agrees({"lo": 0.2, "hi": 0.4}, 0.2) and agrees({"lo": 0.2, "hi": 0.4}, 0.4)
