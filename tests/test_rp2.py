"""RP2 engine: fidelity with the original runs (short budgets), DCT, adaptive hook, binary resume."""

import json

import numpy as np
import pytest
import scipy.fft
import tensorflow as tf

from blurnet_tf import dct
from blurnet_tf.attacks import low_frequency, rp2
from blurnet_tf.attacks.rp2 import masked_norm, nps
from blurnet_tf.data import SPEED_LIMIT_45, load_mask
from blurnet_tf.defences import model_regulariser, total_variation
from blurnet_tf.registry import build_model
from blurnet_tf.evaluation.reference_logs import parse_reference_log
from blurnet_tf.models import layer_output_model
from conftest import run_python


def test_rectangle_run_follows_the_reference_log(original_model, victims, data_dir):
    """Original weights, rectangles, lambda 0.02, lr 0.1, target 12: the log reaches 90% at epoch 17."""
    log = parse_reference_log(data_dir, "rectangles")
    r = rp2(
        original_model,
        victims,
        load_mask(data_dir, "rectangles"),
        [SPEED_LIMIT_45],
        lam=0.02,
        epochs=25,
        seed=log["flags"]["tf_seed"],
    )
    mis = r.history["misclassified"][:, 0, 0]
    assert mis[0] == log["misclassified"][0] == 27.5
    assert mis[-1] >= 85.0 and abs(mis[-1] - log["misclassified"][24]) <= 5.0
    assert abs((r.predictions[0, 0] == SPEED_LIMIT_45).sum() - 36) <= 2  # log: 36 of 40
    # Same loss at the start and on the plateau (the random start differs, so the descent may
    # run an epoch ahead or behind).
    np.testing.assert_allclose(r.history["loss"][0, 0, 0], log["loss"][0], rtol=0.05)
    np.testing.assert_allclose(r.history["loss"][17:, 0, 0], log["loss"][17:25], rtol=0.05)


def test_octagon_run_reaches_100_percent_within_a_few_epochs(original_model, victims, data_dir):
    r = rp2(original_model, victims, load_mask(data_dir, "octagon"), [SPEED_LIMIT_45], lam=0.02, epochs=6, seed=12345)
    assert (r.history["misclassified"][2:, 0, 0] == 100.0).all()  # log: 100% from epoch 2


def test_epochs_in_chunks_give_the_one_call_result_and_report_progress(original_model, victims, data_dir):
    mask = load_mask(data_dir, "rectangles")
    seen = []
    chunked = rp2(
        original_model,
        victims[:6],
        mask,
        [3, 12],
        lam=0.002,
        epochs=7,
        chunk=3,
        progress=lambda done, total: seen.append((done, total)),
    )
    whole = rp2(original_model, victims[:6], mask, [3, 12], lam=0.002, epochs=7, chunk=7)
    assert seen == [(3, 7), (6, 7), (7, 7)]
    np.testing.assert_array_equal(chunked.noise, whole.noise)
    for key in whole.history:
        np.testing.assert_array_equal(chunked.history[key], whole.history[key])


def test_vectorised_sweep_equals_separate_runs(original_model, victims, data_dir):
    mask = load_mask(data_dir, "rectangles")
    both = rp2(original_model, victims[:8], mask, [3, 12], lam=[0.002, 0.02], epochs=5, noise_init="zeros")
    alone = rp2(original_model, victims[:8], mask, [12], lam=0.02, epochs=5, noise_init="zeros")
    np.testing.assert_allclose(both.noise[1, 1], alone.noise[0, 0], atol=1e-5)
    np.testing.assert_allclose(both.history["loss"][:, 1, 1], alone.history["loss"][:, 0, 0], rtol=1e-5)


def test_dct_pair_is_orthonormal_and_matches_scipy():
    x = np.random.default_rng(0).random((2, 32, 32, 3)).astype(np.float32)
    X = dct.dct2(tf.constant(x)).numpy()
    np.testing.assert_allclose(X, scipy.fft.dctn(x, type=2, axes=(1, 2), norm="ortho"), atol=1e-5)
    np.testing.assert_allclose(dct.idct2(X).numpy(), x, atol=1e-5)
    C = dct.dct_matrix(32)
    np.testing.assert_allclose(C @ C.T, np.eye(32), atol=1e-5)


def test_low_pass_keeps_only_its_block():
    x = tf.constant(np.random.default_rng(1).random((32, 32, 3)).astype(np.float32))
    coefficients = dct.dct2(dct.low_pass(x, 8)).numpy()
    assert np.abs(coefficients[8:]).max() < 1e-5 and np.abs(coefficients[:, 8:]).max() < 1e-5


def test_full_dct_mask_reduces_to_plain_rp2(original_model, victims, data_dir):
    mask = load_mask(data_dir, "rectangles")
    plain = rp2(original_model, victims[:10], mask, [12], lam=0.002, epochs=8, seed=7)
    full = rp2(original_model, victims[:10], mask, [12], lam=0.002, epochs=8, seed=7, transform=low_frequency(32))
    np.testing.assert_allclose(full.noise, plain.noise, atol=1e-3)
    assert np.array_equal(full.predictions, plain.predictions)


def test_adaptive_hook_adds_exactly_the_defence_regulariser(victims, data_dir):
    model = build_model("tv")
    fn, _ = model_regulariser(model)
    mask = load_mask(data_dir, "rectangles")
    base = rp2(model, victims[:6], mask, [12], lam=0.002, epochs=1, noise_init="zeros")
    adaptive = rp2(model, victims[:6], mask, [12], lam=0.002, epochs=1, noise_init="zeros", extra_loss=fn)
    maps = layer_output_model(model)(victims[:6], training=False)
    # zero noise: the adversarial images are the victims; the hook adds TV of their maps
    added = float(total_variation(maps))
    assert added > 0
    # the hook's term is exactly the model's TV of those maps; the RP2 terms are unchanged
    assert float(adaptive.history["extra_loss"][0]) == pytest.approx(added, rel=1e-5)
    assert float(base.history["extra_loss"][0]) == 0.0
    assert base.history["loss"][0, 0, 0] == pytest.approx(adaptive.history["loss"][0, 0, 0])
    # and it changes the optimisation
    assert not np.allclose(base.noise, adaptive.noise)


def test_norm_is_nan_free_at_zero_and_nps_by_hand():
    z = tf.Variable(tf.zeros((1, 4, 4, 3)))
    with tf.GradientTape() as tape:
        value = masked_norm(z, "l2")
    assert not np.isnan(tape.gradient(value, z).numpy()).any()
    delta = np.zeros((1, 1, 3), np.float32)
    delta[0, 0] = (0.3, 0.4, 0.0)
    colours = np.array([[0, 0, 0], [0.3, 0.4, 1.0]], np.float32)  # distances 0.5 and 1.0
    assert float(nps(tf.constant(delta), colours)) == pytest.approx(0.5, rel=1e-5)


def test_the_printability_term_is_added_to_the_loss_as_computed_by_hand():
    """λ 0, a fixed noise colour and two printable colours: the first epoch's loss with NPS minus the one
    without is the hand-computed score, sum over pixels of prod over colours of ||M delta - p||."""
    import keras

    model = keras.Sequential([keras.Input((4, 4, 3)), keras.layers.Flatten(), keras.layers.Dense(3)])
    x = np.random.default_rng(0).random((2, 4, 4, 3)).astype(np.float32)
    mask = np.zeros((4, 4, 3), np.float32)
    mask[1:3, 1:3] = 1.0  # a 2x2 sticker
    colour, printable = (0.3, 0.4, 0.0), np.array([[0.1, 0.1, 0.1], [0.3, 0.4, 1.0]], np.float32)
    masked = mask * np.array(colour, np.float32)
    dist = np.linalg.norm(masked[:, :, None, :] - printable, axis=-1)  # [H, W, P]
    expected = float(dist.prod(axis=-1).sum())  # 4 sticker pixels at 0.37 x 1.0, 12 outside at 0.17 x 1.12
    runs = [rp2(model, x, mask, [1], lam=0.0, epochs=1, noise_init=colour, nps_colors=c) for c in (None, printable)]
    assert runs[1].history["loss"][0, 0, 0] - runs[0].history["loss"][0, 0, 0] == pytest.approx(expected, rel=1e-4)
    assert expected == pytest.approx(4 * 0.14**0.5 + 12 * 0.03**0.5 * 1.25**0.5, rel=1e-5)


@pytest.mark.slow
def test_attack_binary_writes_results_and_resumes(tmp_path):
    args = (
        "-m",
        "blurnet_tf.cli.attack",
        "--model=original",
        "--flagfile=flags/attacks/whitebox.flags",
        "--targets=12,1",
        "--epochs=20",
        "--targets_per_call=1",
        f"--out={tmp_path}",
    )
    first = run_python(*args)
    assert "done in an earlier run" not in first.stdout
    parts = sorted((tmp_path / "parts").glob("*.json"))
    assert len(parts) == 2
    parts[1].unlink()  # as if killed after the first target group
    second = run_python(*args)
    assert second.stdout.count("done in an earlier run") == 1
    result = json.loads((tmp_path / "results.json").read_text())
    assert {r["target"] for r in result["rows"]} == {12, 1}
    assert result["paper"]["avg_asr"] == 0.4918
    assert (tmp_path / "results.csv").read_text().startswith("model,seed,lambda,target,asr,targeted,l2\n")
    assert list((tmp_path / "noise").glob("*.npy")) and list((tmp_path / "images").glob("*.png"))
    # TensorBoard: the stored loss / ASR curves as scalars, one point per epoch
    events = list((tmp_path / "tensorboard").glob("*/events.out.tfevents.*"))
    assert len(events) == 1
    curves = {}
    for event in tf.compat.v1.train.summary_iterator(str(events[0])):
        for value in event.summary.value:
            curves.setdefault(value.tag, {})[event.step] = float(tf.make_ndarray(value.tensor))
    for name, history in result["history"].items():
        lam, target = name.split("/")
        for metric in ("loss", "misclassified", "targeted"):
            stored = curves[f"rp2/lambda={lam}/target_{target}/{metric}"]
            assert [stored[e] for e in range(20)] == pytest.approx(history[metric], abs=1e-4)


def test_rp2_refuses_settings_out_of_range_with_one_error_naming_each(original_model, victims, data_dir):

    mask = load_mask(data_dir, "rectangles")
    grey = mask * 0.5
    for kwargs, match in (
        ({"lam": float("nan")}, "lam must be finite"),
        ({"lam": -1.0}, "lam must be finite"),
        ({"lam": 0.002, "mask": grey}, "mask must hold only 0"),
        ({"lam": 0.002, "targets": 18}, r"targets must be classes of the model \(0..17\)"),
        ({"lam": 0.002, "targets": -1}, "targets must be class indices"),
        ({"lam": 0.002, "epochs": -1}, "epochs must be an integer"),
        ({"lam": 0.002, "norm": "linf"}, "norm must be l1 or l2"),
        ({"lam": 0.002, "noise_clip": float("nan")}, "noise_clip must be a positive number"),
        ({"lam": 0.002, "noise_clip": 0.0}, "noise_clip must be a positive number"),
    ):
        args = {"mask": mask, "targets": 5, "epochs": 1, **kwargs}
        with pytest.raises(ValueError, match=match):
            rp2(original_model, victims[:2], args.pop("mask"), args.pop("targets"), **args)


def test_an_rp2_result_has_the_success_mask_every_attack_result_has(original_model, victims, data_dir):
    r = rp2(original_model, victims[:5], load_mask(data_dir, "rectangles"), [3, 12], lam=[0.002, 0.02], epochs=2)
    assert r.success.shape == (2, 2, 5) and r.success.dtype == bool
    np.testing.assert_array_equal(r.success, r.predictions != r.clean_predictions)
