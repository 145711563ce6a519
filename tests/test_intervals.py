"""The hierarchical bootstrap behind every interval and claim verdict: hand-made cases."""

import numpy as np
import pytest

from blurnet_tf.evaluation.intervals import (accuracy_interval, agrees, asr_interval, paired_difference,
                                             verdict)


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
