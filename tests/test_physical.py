"""RP2's physical channel (issue 44): the viewing conditions against closed forms, the digital attack as
the degenerate case of the expectation, and an EOT sticker that survives the held-out stationary grid
better than the digital one."""

import math

import numpy as np
import pytest
import tensorflow as tf

from blurnet_tf.attacks import Condition, PhysicalConditions, rp2, sample_views, see
from blurnet_tf.data import SPEED_LIMIT_45, load_mask

NONE = PhysicalConditions(
    samples=1, max_distance=1.0, max_yaw=0.0, max_roll=0.0, brightness=0.0, contrast=0.0, max_blur=0.0, noise=0.0
)


def _images(n=3, size=16, seed=0):
    return np.random.default_rng(seed).random((n, size, size, 3), np.float32)


def test_no_condition_sees_the_images_bit_for_bit():
    x = _images()
    np.testing.assert_array_equal(see(x, Condition()).numpy(), x)
    np.testing.assert_array_equal(sample_views(tf.constant(x), NONE, tf.constant([0, 0])).numpy(), x)


def test_a_quarter_turn_of_roll_rotates_the_image_and_yaw_foreshortens_as_a_pinhole_camera_would():
    x = _images(size=15)
    np.testing.assert_allclose(see(x, Condition(roll=90.0)).numpy(), np.rot90(x, k=-1, axes=(1, 2)), atol=1e-4)
    # A horizontal ramp I = u / 14: the output pixel u' (centred) shows the input point
    # u = z0 u' / (z0 cos θ - u' sin θ), z0 = 2 W (the camera's focal distance); bilinear sampling of a ramp is exact.
    size, theta = 15, math.radians(30)
    ramp = np.broadcast_to(np.arange(size, dtype=np.float32)[None, None, :, None] / (size - 1), (1, size, size, 3))
    seen = see(ramp, Condition(yaw=30.0)).numpy()[0, 7, :, 0]
    z0, centre = 2.0 * size, (size - 1) / 2
    u_out = np.arange(size) - centre
    u_in = z0 * u_out / (z0 * math.cos(theta) - u_out * math.sin(theta))
    inside = np.abs(u_in) <= centre
    assert inside.sum() >= 11 and not inside.all()  # the turned sign is narrower: its edges repeat
    np.testing.assert_allclose(seen[inside], (u_in[inside] + centre) / (size - 1), atol=1e-4)


def test_distance_keeps_a_flat_sign_and_loses_fine_detail():
    flat = np.full((1, 32, 32, 3), 0.4, np.float32)
    np.testing.assert_allclose(see(flat, Condition(distance=4.0)).numpy(), flat, atol=1e-6)
    checker = (np.indices((32, 32)).sum(0) % 2).astype(np.float32)[None, :, :, None] * np.ones(3, np.float32)
    far = see(checker, Condition(distance=4.0)).numpy()
    assert far.std() < 0.05 * checker.std() and abs(far.mean() - 0.5) < 0.01


def test_views_are_seeded_and_each_view_of_an_image_differs():
    x = tf.constant(_images(n=2))
    conditions = PhysicalConditions(samples=3, noise=0.0)
    a = sample_views(x, conditions, tf.constant([1, 5])).numpy()
    assert a.shape == (6, 16, 16, 3) and 0 <= a.min() and a.max() <= 1
    np.testing.assert_array_equal(a, sample_views(x, conditions, tf.constant([1, 5])).numpy())
    assert not np.array_equal(a, sample_views(x, conditions, tf.constant([1, 6])).numpy())
    assert not np.allclose(a[0], a[2]) and not np.allclose(a[0], a[4])  # image 0's three views


def test_copies_of_the_same_images_are_seen_under_the_same_conditions():
    x = _images(n=2)
    twice = sample_views(
        tf.constant(np.concatenate([x, x])), PhysicalConditions(samples=3), tf.constant([4, 1]), copies=2
    )
    views = twice.numpy().reshape(3, 2, 2, 16, 16, 3)  # (view, copy, image)
    np.testing.assert_array_equal(views[:, 0], views[:, 1])
    once = sample_views(tf.constant(x), PhysicalConditions(samples=3), tf.constant([4, 1])).numpy()
    np.testing.assert_array_equal(once.reshape(3, 2, 16, 16, 3), views[:, 0])  # and as they are seen alone
    with pytest.raises(ValueError, match="^copies: expected an integer >= 1 dividing the batch"):
        sample_views(tf.constant(x), NONE, tf.constant([0, 0]), copies=3)


def test_an_eot_target_gets_the_same_sticker_alone_or_beside_others(original_model, victims, data_dir):
    """The review's case: a victim's views depend on (seed, epoch), not on the targets sharing the call."""
    mask, conditions = load_mask(data_dir, "rectangles"), PhysicalConditions(samples=2)
    settings = dict(lam=0.002, epochs=4, noise_init="zeros", physical=conditions)
    both = rp2(original_model, victims[:6], mask, [3, SPEED_LIMIT_45], **settings)
    alone = rp2(original_model, victims[:6], mask, [SPEED_LIMIT_45], **settings)
    np.testing.assert_allclose(both.noise[0, 1], alone.noise[0, 0], atol=1e-5)


def test_the_straight_through_jpeg_passes_the_gradient_unchanged():
    x = tf.Variable(_images(n=1))
    conditions = PhysicalConditions(**{**NONE.__dict__, "jpeg_quality": 30})
    with tf.GradientTape() as tape:
        seen = sample_views(x, conditions, tf.constant([0, 0]))
        total = tf.reduce_sum(seen * 3.0)
    assert np.abs(seen.numpy() - x.numpy()).max() > 0.01  # JPEG changed the pixels ...
    np.testing.assert_allclose(tape.gradient(total, x).numpy(), 3.0)  # ... and the gradient is the identity's


@pytest.mark.parametrize(
    "field,value",
    [
        ("samples", 0),
        ("samples", True),
        ("samples", 65),
        ("jpeg_quality", True),
        ("max_distance", 0.5),
        ("max_yaw", 90.0),
        ("contrast", 1.0),
        ("noise", float("nan")),
        ("jpeg_quality", 100),
        ("max_blur", -1.0),
    ],
)
def test_a_distribution_out_of_range_is_refused_naming_the_field(field, value):
    with pytest.raises(ValueError, match=f"^{field}: expected"):
        PhysicalConditions(**{field: value})


@pytest.mark.parametrize(
    "field,value",
    [
        ("distance", 0.0),
        ("distance", float("nan")),
        ("yaw", 90.0),
        ("roll", float("inf")),
        ("contrast", float("nan")),
        ("blur", -1.0),
        ("brightness", 2.0),
    ],
)
def test_a_condition_out_of_range_is_refused_naming_the_field(field, value):
    """The sweep of these surfaces (issue 43's rule): NaN, negative or degenerate conditions gave NaN or
    garbage images, or TensorFlow's errors; now one ValueError naming the field."""
    with pytest.raises(ValueError, match=f"^{field}: expected"):
        Condition(**{field: value})


def test_images_and_seeds_of_the_wrong_kind_are_named():
    x = _images()
    for bad in ((x * 255).astype(np.uint8), x[0]):  # integer pixels (all saturated to 1 before); one image
        with pytest.raises(ValueError, match=r"^x: expected float images \[B, H, W, C\]"):
            see(bad, Condition())
        with pytest.raises(ValueError, match=r"^x: expected float images"):
            sample_views(bad, NONE, tf.constant([0, 0]))
    for seed in (tf.constant([0, 0, 0]), tf.constant(0), tf.constant([0.5, 1.0])):
        with pytest.raises(ValueError, match="^seed: expected two integers"):
            sample_views(x, NONE, seed)
    with pytest.raises(ValueError, match="^condition: expected a Condition"):
        see(x, "near")


def test_rp2_under_a_distribution_of_no_change_is_the_digital_attack_exactly(original_model, victims, data_dir):
    """The expectation over one view that changes nothing is the digital attack, bit for bit: the EOT
    path adds no arithmetic of its own."""
    mask = load_mask(data_dir, "rectangles")
    digital = rp2(original_model, victims[:8], mask, [3, SPEED_LIMIT_45], lam=0.002, epochs=6, seed=2)
    same = rp2(original_model, victims[:8], mask, [3, SPEED_LIMIT_45], lam=0.002, epochs=6, seed=2, physical=NONE)
    np.testing.assert_array_equal(same.noise, digital.noise)
    np.testing.assert_array_equal(same.predictions, digital.predictions)
    for key in digital.history:
        np.testing.assert_array_equal(same.history[key], digital.history[key])


def test_the_eot_loss_is_the_mean_over_the_views_drawn_for_the_epoch(original_model, victims, data_dir):
    """Eq. 1 in expectation: the first epoch's loss is the cross-entropy towards the target averaged over the k
    views sample_views draws for (seed, epoch 0) of every victim, plus λ ||M δ||, computed here by hand."""
    from blurnet_tf.attacks.rp2 import masked_norm

    mask = load_mask(data_dir, "rectangles").astype(np.float32)
    x, lam, seed, conditions = victims[:6], 0.002, 3, PhysicalConditions(samples=3)
    r = rp2(original_model, x, mask, [SPEED_LIMIT_45], lam=lam, epochs=1, seed=seed, physical=conditions)
    noise = tf.random.stateless_uniform((1, 1) + x.shape[1:], seed=[seed, 0])
    adversarial = tf.clip_by_value(x + mask * noise[0, 0], 0.0, 1.0)
    views = sample_views(adversarial, conditions, tf.constant([seed, 0]))
    ce = tf.keras.losses.sparse_categorical_crossentropy(
        np.full(len(views), SPEED_LIMIT_45), original_model(views), from_logits=True
    )
    expected = float(tf.reduce_mean(ce)) + lam * float(masked_norm(mask * noise, "l2")[0, 0])
    np.testing.assert_allclose(r.history["loss"][0, 0, 0], expected, rtol=1e-5)
    digital = rp2(original_model, x, mask, [SPEED_LIMIT_45], lam=lam, epochs=1, seed=seed)
    assert abs(digital.history["loss"][0, 0, 0] - expected) > 1e-3  # the views are not the photographs


def test_the_attack_experiment_runs_in_expectation_and_keeps_the_digital_key(tmp_path, data_dir):
    """`--physical_samples` (StickerAttack.physical_samples): the digital attack's key is the one it had before
    EOT existed (f1bbd7371595, so finished work directories stay finished); a run with views records them."""
    from blurnet_tf.experiments.rp2_stickers import StickerAttack

    assert StickerAttack(model="original").key == "f1bbd7371595"
    settings = dict(model="original", targets=(12,), epochs=3, data_dir=str(data_dir))
    eot = StickerAttack(**settings, physical_samples=2).run(tmp_path / "eot", save_images=0, log=lambda m: None)
    digital = StickerAttack(**settings).run(tmp_path / "digital", save_images=0, log=lambda m: None)
    assert eot.flags["physical_samples"] == 2 and digital.flags["physical_samples"] == 0
    again = StickerAttack(**settings).run(tmp_path / "digital", save_images=0, log=lambda m: None)  # the review's
    assert again.rows == digital.rows  # a finished digital attack is found finished, not "another attack"
    assert eot.history["0.002/12"]["loss"] != digital.history["0.002/12"]["loss"]


@pytest.mark.slow
def test_the_strength_checks_hold_for_the_eot_attack_read_on_fresh_views(original_model, victims, data_dir):
    """Issue 44: with the whole image as its mask and λ 0, RP2 in expectation over viewing conditions moves
    every victim's prediction on views it never optimised over; the sticker's success grows with its epochs."""
    from blurnet_tf.data import STOP
    from blurnet_tf.evaluation.attack_strength import strength_checks

    mask = load_mask(data_dir, "rectangles")
    r = strength_checks(
        original_model,
        victims[:10],
        np.full(10, STOP),
        steps=5,
        eps_grid=(8 / 255,),
        mask=mask,
        targets=[12],
        rp2_epochs=30,
        rp2_physical=PhysicalConditions(samples=2),
    )
    assert r["checks"]["unrestricted_rp2"] and r["unrestricted_rp2_success"] >= 0.99, r
    assert r["checks"]["monotone_rp2"] and r["rp2_success"][1] > r["rp2_success"][0], r


def _stationary_records(success_by_row, seeds, right="1" * 30 + "0" * 10):
    """Flat records of a physical study: per row and seed, every grid condition and target moving the first k(seed)
    victims of both stickers."""
    from blurnet_tf.reports import flat_records
    from blurnet_tf.reports import physical_verdict as rule

    b = flat_records.RecordBuilder("abc", False)
    for row, k in success_by_row.items():
        for seed in seeds:
            b.add(rule.EXPERIMENT, row, "legit_accuracy", 0.98, seed, images=1000)
            b.add(rule.EXPERIMENT, row, "victims_right", right.count("1"), seed, images=40, success=right)
            for sticker in ("digital", "eot"):
                for condition in ("1x distance, 0°", "6x distance, 30°"):
                    for target in (7, 12):
                        bits = "1" * k(seed) + "0" * (40 - k(seed))
                        b.add(
                            rule.EXPERIMENT,
                            row,
                            "moved",
                            k(seed) / 40,
                            seed,
                            variant=f"{sticker}/{condition}",
                            target=target,
                            success=bits,
                        )
    return b.rows


def test_the_physical_cells_count_the_right_victims_and_pair_seeds():
    from blurnet_tf.reports import physical_verdict as rule

    records = _stationary_records({"baseline": lambda s: 24, "tik_hf": lambda s: 3 * s}, range(6))
    found = rule.points(records)
    assert {p.success for p in found if p.row == "baseline"} == {80.0}  # 24 moved of the 30 right victims
    cells = rule.cells(found)
    eot = next(c for c in cells if c.sticker == "eot")
    assert eot.seeds == tuple(range(6)) and eot.mean == pytest.approx(
        np.mean([100 * 3 * s / 30 - 80 for s in range(6)])
    )
    assert eot.call == "below" and eot.p_holm == pytest.approx(eot.p)  # one deciding cell: Holm changes nothing
    assert next(c for c in cells if c.sticker == "digital").call == "shown"
    assert [(v.row, v.verdict) for v in rule.verdicts(cells)] == [("tik_hf", "held")]


@pytest.mark.parametrize("noise", ["normal", "t3"])
def test_with_no_true_effect_the_physical_rule_calls_at_most_five_percent_of_cells(noise):
    """Through rule.cells as the report runs it: the baseline and three BlurNet families, both stickers, 6 seeds,
    each seed's success a shared seed effect plus per-row noise of the issue's spread, and no true difference."""
    from blurnet_tf.reports import physical_verdict as rule

    rng = np.random.default_rng(44)
    rows, sims, called = ("baseline", "conv_7", "tv_1e-4", "tik_hf"), 400, 0
    for _ in range(sims):
        shared = 30 + 10 * rng.normal(size=6)
        noise_draw = rng.normal(size=(4, 2, 6)) if noise == "normal" else rng.standard_t(3, size=(4, 2, 6)) / np.sqrt(3)
        found = [
            rule.StickerPoint(
                row, seed, sticker, float(shared[seed] + 11.7 * noise_draw[r, k, seed]), {}, None, 98.0, 30
            )
            for r, row in enumerate(rows)
            for k, sticker in enumerate(("digital", "eot"))
            for seed in range(6)
        ]
        called += sum(c.call in ("below", "above") for c in rule.cells(found))
    assert called / (3 * sims) <= 0.05  # 11.7 per row: a paired difference of 16.6 points


def test_a_physical_cell_with_too_few_seeds_or_no_spread_is_untested():
    from blurnet_tf.reports import physical_verdict as rule

    def points(row, values):
        return [rule.StickerPoint(row, s, "eot", v, {}, None, 98.0, 30) for s, v in enumerate(values)]

    same = rule.cells(points("baseline", [40, 50, 60]) + points("tv_1e-4", [30, 40, 50]))  # -10 every seed
    assert [(v.row, v.verdict) for v in rule.verdicts(same)] == [("tv_1e-4", "untested")]
    few = rule.cells(points("baseline", [40, 50]) + points("tv_1e-4", [30, 45]))
    assert rule.verdicts(few)[0].verdict == "untested" and "2 seeds" in rule.verdicts(few)[0].why
