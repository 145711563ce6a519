"""Defend++ as the paper ran it (issue #16): ResNet-18 on the official MNIST split, trained by SGD
(momentum 0.9, PyTorch-style weight decay 5e-4) under the paper's step schedule."""

import hashlib
import shutil

import keras
import numpy as np
import pytest

from blurnet_tf.data.mnist import IMAGES, LABELS, load_mnist_official
from blurnet_tf.defences.defendpp import TAPS, DefendPP, taps_for
from blurnet_tf.errors import DataError, SettingError
from blurnet_tf.experiments.classifier_training import TrainingRun
from blurnet_tf.experiments.model_training import compile_for_training
from blurnet_tf.experiments.paper_sgd import CoupledSGD, PaperStepDecay, drop_steps
from blurnet_tf.models.mnist_resnet18 import STAGES, mnist_resnet18
from blurnet_tf.registry import build_model, load_model, save_model


@pytest.fixture(scope="module")
def resnet18():
    keras.utils.set_random_seed(0)
    return mnist_resnet18()


def test_the_four_stages_sit_at_28_14_7_4_with_64_to_512_channels(resnet18):
    shapes = [tuple(resnet18.get_layer(s).output.shape[1:]) for s in STAGES]
    assert shapes == [(28, 28, 64), (14, 14, 128), (7, 7, 256), (4, 4, 512)]
    assert resnet18.output.shape[1:] == (10,)
    # Defend++ taps the ends of stages 1, 2 and 4 at scales 28/14/7 (no 4x4 target: see defendpp.py).
    taps = taps_for(resnet18)
    assert taps is TAPS["mnist_resnet18"]
    assert taps.sizes == (28, 14, 7) and taps.skips == ("stage1", "stage2") and taps.bottleneck == "stage4"


def test_parameter_count_is_resnet18s(resnet18):
    trainable = sum(int(np.prod(w.shape)) for w in resnet18.trainable_weights)
    # The CIFAR ResNet-18 has 11,173,962 with a 3-channel input; 1 channel saves 2 x 9 x 64.
    assert trainable == 11_173_962 - 2 * 9 * 64
    assert 11.1e6 < trainable < 11.2e6


def test_sgd_steps_lower_the_loss_and_defendpp_builds_around_it():
    keras.utils.set_random_seed(0)
    model = compile_for_training(
        build_model("baseline", "mnist", architecture="mnist_resnet18"),
        0.01,
        "constant",
        1,
        optimizer="sgd",
        weight_decay=5e-4,
    )
    assert isinstance(model.optimizer, CoupledSGD) and model.optimizer.coupled_weight_decay == 5e-4
    model.run_eagerly = True  # tracing a ResNet-18 costs more than these few steps
    x = np.random.default_rng(0).random((8, 28, 28, 1), dtype=np.float32)
    y = np.arange(8) % 10
    losses = [float(model.train_on_batch(x, y)[0]) for _ in range(3)]
    assert losses[-1] < losses[0]

    defended = build_model("defendpp", "mnist", architecture="mnist_resnet18")
    assert isinstance(defended, DefendPP) and defended.classifier.name == "mnist_resnet18"
    shapes = [tuple(o.shape[1:]) for o in defended.joint.outputs]
    assert shapes == [(10,), (28, 28, 1), (14, 14, 1), (7, 7, 1)]
    assert defended.joint.get_layer("stage3") is defended.classifier.get_layer("stage3")  # shared encoder
    with pytest.raises(ValueError, match="architecture"):
        build_model("baseline", "lisa", architecture="mnist_resnet18")


@pytest.mark.slow
def test_defendpp_stays_finite_under_the_papers_sgd(data_dir):
    """Without batch norm in the decoder, ResNet-18's reconstruction loss reached 5e18 after 6 of
    these steps and NaN after 7 (measured); the paper's encoder blocks are normalised, so are ours."""
    keras.utils.set_random_seed(0)
    x, y = load_mnist_official(data_dir)["train"]
    model = compile_for_training(
        build_model("defendpp", "mnist", architecture="mnist_resnet18"),
        0.01,
        "constant",
        1,
        optimizer="sgd",
        weight_decay=5e-4,
    )
    seen = []
    model.fit(
        x[:256],
        y[:256],
        batch_size=32,
        epochs=1,
        verbose=0,
        shuffle=False,
        callbacks=[keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(dict(logs)))],
    )
    mean = [float(logs["reconstruction_loss"]) for logs in seen]  # running means over the epoch's batches
    assert all(np.isfinite(mean)) and max(mean) < 1e3, mean


@pytest.mark.parametrize("epochs,drops", [(250, (100, 200)), (10, (4, 8)), (30, (12, 24))])
def test_paper_step_schedule_divides_by_10_at_40_and_80_percent(epochs, drops):
    steps = 3
    assert drop_steps(epochs, steps) == (drops[0] * steps, drops[1] * steps)
    schedule = PaperStepDecay(0.01, steps, epochs)
    first, second = drops
    expected = {0: 0.01, first - 1: 0.01, first: 1e-3, second - 1: 1e-3, second: 1e-4, epochs - 1: 1e-4}
    for epoch, rate in expected.items():
        for step in (epoch * steps, epoch * steps + steps - 1):  # constant within the epoch
            assert schedule.rate_at_step(step) == pytest.approx(rate)
            assert float(schedule(step)) == pytest.approx(rate, rel=1e-6)


@pytest.mark.parametrize("epochs,steps,drops", [(1, 235, (94, 188)), (3, 235, (282, 564))])
def test_a_cpu_budget_keeps_the_40_40_20_shape_in_steps(epochs, steps, drops):
    # 1 or 3 epochs of the 60,000 at batch 256 (235 steps): the drops fall inside epochs.
    schedule = PaperStepDecay(0.01, steps, epochs)
    assert schedule.drops == drops
    for step, rate in (
        (drops[0] - 1, 0.01),
        (drops[0], 1e-3),
        (drops[1] - 1, 1e-3),
        (drops[1], 1e-4),
        (epochs * steps - 1, 1e-4),
    ):
        assert float(schedule(step)) == pytest.approx(rate, rel=1e-6)


def test_coupled_weight_decay_is_l2_in_the_gradient_before_momentum():
    # PyTorch SGD(lr, momentum m, weight_decay wd) with a zero loss gradient: b = m b + wd w; w -= lr b.
    lr, m, wd = 0.1, 0.9, 0.05
    opt = CoupledSGD(lr, coupled_weight_decay=wd, momentum=m)
    w = keras.Variable(np.array([1.0, -2.0], np.float32))
    opt.build([w])
    ref_w, ref_b = np.array([1.0, -2.0]), np.zeros(2)
    for _ in range(3):
        opt.apply_gradients([(np.zeros(2, np.float32), w)])
        ref_b = m * ref_b + wd * ref_w
        ref_w = ref_w - lr * ref_b
        np.testing.assert_allclose(w.numpy(), ref_w, rtol=1e-6)


def test_sgd_and_schedule_survive_a_checkpoint(tmp_path):
    model = compile_for_training(
        build_model("baseline", "mnist"), 0.01, "paper_step", 10 * 4, optimizer="sgd", weight_decay=5e-4, epochs=10
    )
    save_model(model, tmp_path / "model.keras")
    loaded = load_model(tmp_path / "model.keras", compile=True)
    assert isinstance(loaded.optimizer, CoupledSGD) and loaded.optimizer.coupled_weight_decay == 5e-4
    schedule = loaded.optimizer._learning_rate
    assert isinstance(schedule, PaperStepDecay) and (schedule.steps_per_epoch, schedule.epochs) == (4, 10)


def test_the_new_settings_keep_old_hashes_and_refuse_bad_values():
    old_keys = {
        "dataset",
        "defence",
        "params",
        "epochs",
        "batch_size",
        "learning_rate",
        "lr_schedule",
        "seed",
        "deterministic",
        "strategy",
        "test_fraction",
        "split_seed",
        "validation_fraction",
        "max_train_images",
        "precision",
    }
    assert set(TrainingRun(dataset="mnist").config()) == old_keys  # existing runs keep their checkpoints
    paper = TrainingRun(
        dataset="mnist",
        architecture="mnist_resnet18",
        mnist_split="official",
        optimizer="sgd",
        weight_decay=5e-4,
        lr_schedule="paper_step",
    )
    assert paper.config()["architecture"] == "mnist_resnet18" and paper.config()["weight_decay"] == 5e-4
    for field, kwargs in [
        ("optimizer", dict(optimizer="rmsprop")),
        ("momentum", dict(optimizer="sgd", momentum=1.0)),
        ("weight_decay", dict(weight_decay=5e-4)),
        ("lr_schedule", dict(lr_schedule="step")),
        ("mnist_split", dict(mnist_split="official")),
        ("architecture", dict(architecture="vgg")),
        ("test_fraction", dict(dataset="mnist", mnist_split="official", test_fraction=0.5)),
    ]:
        with pytest.raises(SettingError, match=f"^--{field}: ") as err:
            TrainingRun(**kwargs)
        assert "\n" not in str(err.value)


def _digests(images):
    return {hashlib.sha1(row.tobytes()).digest() for row in images}


def test_official_split_is_60000_10000_with_a_disjoint_validation_slice(data_dir):
    full = load_mnist_official(data_dir)
    assert len(full["train"][1]) == 60000 and len(full["test"][1]) == 10000 and len(full["validation"][1]) == 0
    assert full["train"][0].shape[1:] == (28, 28, 1) and full["train"][0].dtype == np.float32
    assert np.bincount(full["train"][1]).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert set(np.unique(full["test"][1])) == set(range(10))
    held = load_mnist_official(data_dir, validation=5000, seed=1)
    (x_train, y_train), (x_val, y_val) = held["train"], held["validation"]
    assert len(y_train) == 55000 and len(y_val) == 5000
    assert not _digests(x_train) & _digests(x_val)  # (the 60,000 images are all distinct)
    assert _digests(x_train) | _digests(x_val) == _digests(full["train"][0])
    np.testing.assert_array_equal(load_mnist_official(data_dir, validation=5000, seed=1)["validation"][1], y_val)
    assert not np.array_equal(load_mnist_official(data_dir, validation=5000, seed=2)["validation"][0], x_val)


def test_a_cache_with_only_the_test_files_is_a_one_line_error(data_dir, tmp_path):
    (tmp_path / "mnist").mkdir()
    for name in (IMAGES, LABELS):
        shutil.copy(data_dir / "mnist" / name, tmp_path / "mnist" / name)
    with pytest.raises(DataError, match="only the MNIST test files") as err:
        load_mnist_official(tmp_path)
    assert "\n" not in str(err.value) and "train-images-idx3-ubyte.gz" in str(err.value)


@pytest.mark.slow
def test_a_model_trained_on_the_official_split_is_attacked_on_the_official_test_set(data_dir, tmp_path):
    from blurnet_tf import rundir
    from blurnet_tf.data import load_test_split
    from blurnet_tf.evaluation.mnist_attack_suite import AttackBudget
    from blurnet_tf.experiments.mnist_robustness import MnistRobustness

    run = tmp_path / "small"
    TrainingRun(dataset="mnist", mnist_split="official", epochs=1, max_train_images=256, batch_size=128).run(
        run, data_dir=data_dir, log=lambda m: None
    )
    assert rundir.trained_split(run) == ("mnist", None, 0)
    x, y = load_test_split(data_dir, *rundir.trained_split(run))
    np.testing.assert_array_equal(y, load_mnist_official(data_dir)["test"][1])  # the 10,000, in file order
    results = MnistRobustness(
        model=str(run), attacks=("clean",), images=50, data_dir=str(data_dir), budget=AttackBudget()
    ).run(tmp_path / "attacks", log=lambda m: None)
    assert results["clean"]["images"] == 50
