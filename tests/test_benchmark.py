"""benchmark() on a Keras classifier that is not the LISA-CNN (24x24, 5 classes, other layer names):
every record's schema, hand-checkable values, and a one-line error for each kind of bad input."""

import keras
import numpy as np
import pytest

from blurnet_tf.evaluation.robustness_benchmark import benchmark
from test_any_model import CLASSES, SIZE, banded, sticker_mask, trained_small_model
from conftest import run_python

FIELDS = {
    "experiment",
    "model",
    "threat_model",
    "attack",
    "budget",
    "seed",
    "target",
    "metric",
    "value",
    "interval",
    "images",
    "seeds",
}


@pytest.fixture(scope="module")
def small():
    return trained_small_model()


def test_every_threat_model_gives_records_of_one_schema_with_consistent_values(small):
    x, y = banded(40, seed=7)
    records = benchmark(
        small,
        x,
        y,
        threat_models=("clean", "linf", "l2", "sticker"),
        targets=[1, 3],
        mask=sticker_mask(),
        seeds=(0, 1),
        linf_eps=0.1,
        linf_steps=5,
        ddn_steps=20,
        rp2_epochs=5,
    )
    assert all(set(r) == FIELDS for r in records)
    by = {(r["threat_model"], r["metric"], r["target"], r["seed"]): r for r in records}
    accuracy = by[("clean", "accuracy", None, None)]
    correct = int(round(accuracy["value"] * 40))
    assert accuracy["interval"][0] <= accuracy["value"] <= accuracy["interval"][1]
    robust, asr = by[("linf", "robust_accuracy", None, None)], by[("linf", "asr", None, None)]
    assert robust["value"] <= accuracy["value"] and asr["images"] == correct
    assert robust["value"] * 40 == pytest.approx(correct * (1 - asr["value"]))
    assert {(r["target"], r["seed"]) for r in records if r["metric"] == "asr" and r["threat_model"] == "sticker"} == {
        (1, 0),
        (3, 0),
        (1, 1),
        (3, 1),
    }
    per_target = [r["value"] for r in records if r["threat_model"] == "sticker" and r["metric"] == "asr"]
    assert by[("sticker", "avg_asr", None, None)]["value"] == pytest.approx(np.mean(per_target))


def test_a_model_that_ignores_its_input_gets_no_verdict_and_a_zero_mask_changes_nothing(small):
    """A model blind to its input would read as 100% accurate on its class and 100% robust: refused (issue 43)."""
    x, y = banded(20, seed=8)
    blind = keras.Sequential([keras.Input((SIZE, SIZE, 3)), keras.layers.Flatten(), keras.layers.Dense(CLASSES)])
    blind.layers[-1].set_weights(
        [np.zeros((SIZE * SIZE * 3, CLASSES), np.float32), 5 * np.eye(CLASSES)[2].astype(np.float32)]
    )
    with pytest.raises(ValueError, match="model: returns the same logits for all 20 images"):
        benchmark(
            blind,
            x,
            np.full(20, 2),
            threat_models=("clean", "linf", "l2", "sticker"),
            targets=[0],
            mask=sticker_mask(),
            linf_steps=3,
            ddn_steps=5,
            rp2_epochs=3,
        )
    untouched = benchmark(
        small, x, y, threat_models=("sticker",), targets=[0, 4], mask=np.zeros((SIZE, SIZE, 3)), rp2_epochs=10
    )
    assert all(r["value"] == 0.0 for r in untouched if r["metric"] in ("asr", "avg_asr", "worst_asr"))


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda m, x, y: (m, x * 255, y), "images: expected finite values in \\[0, 1\\]"),
        (lambda m, x, y: (m, x[0], y), "images: expected a float array"),
        (lambda m, x, y: (m, x, y + CLASSES), "labels: expected classes 0..4"),
        (lambda m, x, y: (m, x, y[:-1]), "labels: expected 6 integer class indices"),
        (lambda m, x, y: (keras.Sequential([m, keras.layers.Softmax()]), x, y), "returns probabilities"),
        (lambda m, x, y: (m, x[:, :20, :20], y), "model: cannot be called on images shaped"),
    ],
)
def test_bad_input_gets_one_error_naming_it(small, change, match):
    x, y = banded(6, seed=9)
    with pytest.raises(ValueError, match=match):
        benchmark(*change(small, x, y), threat_models=("clean",))
    with pytest.raises(ValueError, match="'sticker' needs mask"):
        benchmark(small, x, y, threat_models=("sticker",))
    for budget, match in (
        ({"linf_eps": -0.1}, "linf_eps: expected radii in \\(0, 1\\]"),
        ({"rp2_lambda": float("nan")}, "rp2_lambda"),
        ({"linf_steps": 0}, "linf_steps: expected an integer >= 1"),
        ({"n_examples": 0}, "n_examples"),
    ):
        with pytest.raises(ValueError, match=match):
            benchmark(small, x, y, threat_models=("clean",), **budget)


@pytest.mark.slow
def test_the_binary_writes_the_records_and_names_a_bad_data_file(small, tmp_path):
    import json

    from blurnet_tf.registry import save_model

    x, y = banded(12, seed=10)
    save_model(small, tmp_path / "small.keras")
    np.savez(tmp_path / "data.npz", x=x, y=y)
    np.save(tmp_path / "mask.npy", sticker_mask())
    out = tmp_path / "bench"
    run_python(
        "-m",
        "blurnet_tf.cli.benchmark",
        f"--model={tmp_path / 'small.keras'}",
        f"--data={tmp_path / 'data.npz'}",
        f"--out={out}",
        "--threat_models=clean,linf,sticker",
        f"--mask={tmp_path / 'mask.npy'}",
        "--targets=1",
        "--linf_steps=3",
        "--rp2_epochs=3",
        "--linf_eps=0.01,0.05",
    )
    stored = json.loads((out / "results.json").read_text())
    records = stored["records"]
    assert {r["threat_model"] for r in records} == {"clean", "linf", "sticker"}
    assert [r["budget"].split(",")[0] for r in records if r["threat_model"] == "linf" and r["metric"] == "asr"] == [
        "eps=0.01",
        "eps=0.05",
    ]
    assert stored["arguments"]["linf_eps"] == ["0.01", "0.05"] and stored["versions"]["blurnet_tf"]
    report = (out / "REPORT.md").read_text()
    assert (out / "results.csv").is_file() and "| clean | none |" in report
    assert (out / "robust_accuracy.png").read_bytes()[:4] == b"\x89PNG" and "robust_accuracy.png" in report
    np.savez(tmp_path / "bad.npz", x=x * 255, y=y)
    proc = run_python(
        "-m",
        "blurnet_tf.cli.benchmark",
        f"--model={tmp_path / 'small.keras'}",
        f"--data={tmp_path / 'bad.npz'}",
        f"--out={tmp_path / 'b2'}",
        check=False,
    )
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        "error: --data: expected finite values in [0, 1] (divide 8-bit images by 255)"
    ], proc.stderr


def test_table4s_own_pgd_step_and_benchmark_give_the_same_victims(tmp_path, data_dir, original_model, victims):
    """Table IV's profiles run PGD through experiments.pgd_linf; the robustness profile and a user's model
    through benchmark(): the same settings must break the same victims, so the two cannot drift."""
    import json

    from blurnet_tf import paper
    from blurnet_tf.data import STOP
    from blurnet_tf.experiments.pgd_linf import PgdAttack

    PgdAttack(model="original", data_dir=str(data_dir)).run(tmp_path / "pgd", save_images=0, log=lambda m: None)
    stored = json.loads((tmp_path / "pgd" / "results.json").read_text())["pgd"]
    records = benchmark(
        original_model,
        victims,
        np.full(len(victims), STOP),
        threat_models=("clean", "linf"),
        linf_eps=paper.LINF_EPS,
        linf_steps=paper.PGD_STEPS,
        linf_step=paper.PGD_STEP,
        linf_random_start=False,
    )
    asr = next(r["value"] for r in records if r["threat_model"] == "linf" and r["metric"] == "asr")
    clean = next(r["value"] for r in records if r["threat_model"] == "clean" and r["metric"] == "accuracy")
    assert clean == 1.0 and asr == pytest.approx(stored["asr"])  # every victim right: the two ASRs share a base


def test_a_model_with_non_finite_or_constant_logits_or_one_class_gets_no_verdict():
    """argmax of an all-NaN row is class 0, and a model that ignores its input cannot be attacked: without the
    checks such models read as accurate and robust."""
    import tensorflow as tf

    x, y = banded(12, seed=9)
    y = np.zeros_like(y)  # the label argmax(NaN) would "predict"
    nan_on_last = lambda im: tf.where(tf.range(tf.shape(im)[0])[:, None] >= 10, np.nan, tf.zeros((1, CLASSES)))  # noqa: E731
    nan = r"model: returns non-finite logits \(NaN or inf\) on "
    for model, match in (
        (lambda im: tf.fill((tf.shape(im)[0], CLASSES), np.nan), nan + "12 of 12 images"),
        (nan_on_last, nan + "2 of 12 images"),
        (lambda im: tf.fill((tf.shape(im)[0], CLASSES), np.inf), nan + "12 of 12 images"),
        (
            lambda im: tf.reduce_mean(im, axis=(1, 2, 3))[:, None],
            "model: expected logits over at least 2 classes, got 1",
        ),
        (
            lambda im: tf.zeros((1, CLASSES)),
            r"model: expected logits \[N, classes\] for 12 images, got an output shaped \(1, ",
        ),
        (
            lambda im: tf.tile(tf.range(CLASSES, dtype=tf.float32)[None], (tf.shape(im)[0], 1)),
            "model: returns the same logits for all 12 images",
        ),
    ):
        with pytest.raises(ValueError, match=match):
            benchmark(model, x, y, threat_models=("clean", "linf"), linf_steps=2)


@pytest.mark.parametrize(
    "content,problem",
    [
        (b"", "cannot read it as a NumPy .npy / .npz file"),
        (b"PK\x03\x04truncated", "cannot read it as a NumPy .npy / .npz file"),
        (b"x,y\n1,2\n", "cannot read it as a NumPy .npy / .npz file"),
        ("object", "cannot read it as a NumPy .npy / .npz file"),  # pickled: never unpickled
        ("strings", "expected numeric arrays (--data); got dtype <U1"),
    ],
)
def test_benchmark_data_that_is_not_numeric_arrays_is_one_line_before_any_work(tmp_path, content, problem):
    path = tmp_path / "data.npz"
    if content == "object":
        np.savez(path, x=np.array([{"a": 1}], dtype=object), y=np.zeros(1))
    elif content == "strings":
        np.savez(path, x=np.array(["a"]), y=np.zeros(1))
    else:
        path.write_bytes(content)
    proc = run_python(
        "-m", "blurnet_tf.cli.benchmark", "--model=original", f"--data={path}", f"--out={tmp_path / 'out'}", check=False
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith(f"error: {path}: {problem}"), proc.stderr
    assert not (tmp_path / "out").exists()


def test_benchmark_out_naming_a_file_is_refused_before_any_work(tmp_path):
    (tmp_path / "notes.txt").write_text("mine\n")
    proc = run_python(
        "-m",
        "blurnet_tf.cli.benchmark",
        "--model=original",
        f"--data={tmp_path / 'none.npz'}",
        f"--out={tmp_path / 'notes.txt'}",
        check=False,
    )
    assert proc.returncode == 2 and proc.stderr.strip() == (
        f"error: {tmp_path / 'notes.txt'}: is a file, not a directory (--out)"
    ), proc.stderr
    assert (tmp_path / "notes.txt").read_text() == "mine\n"


def test_benchmark_leaves_the_callers_global_seeds_and_loggers_as_it_found_them(small):
    """ART and cleverhans draw from the global generators: benchmark() seeds them for its own runs only."""
    import logging

    from tensorflow.python.eager import context

    x, y = banded(6, seed=12)
    import tensorflow as tf

    np.random.seed(123)
    expected = np.random.random(3)
    tf.random.set_seed(7)
    first = tf.random.uniform((4,)).numpy()
    untouched = tf.random.uniform((4,)).numpy()  # what the caller's second draw is without benchmark() between
    np.random.seed(123)
    tf.random.set_seed(7)
    assert np.array_equal(tf.random.uniform((4,)).numpy(), first)
    logging.getLogger("art").setLevel(logging.DEBUG)
    records = benchmark(small, x, y, threat_models="autoattack", seeds=(0, 1), autoattack_steps=2, square_queries=3)
    assert np.array_equal(np.random.random(3), expected)  # NumPy's stream goes on where the caller left it
    assert np.array_equal(tf.random.uniform((4,)).numpy(), untouched)  # and TensorFlow's, not restarted
    assert context.global_seed() == 7 and logging.getLogger("art").level == logging.DEBUG
    assert any("steps=2, square_queries=3, runs=2" in r["budget"] for r in records)
    logging.getLogger("art").setLevel(logging.NOTSET)


def test_robustbench_threat_models_with_a_list_of_radii_match_the_linear_models_closed_form():
    """Linf and L2 (AutoAttack) at radii below every image's exact radius keep all of them, above every one
    break all of them: robust accuracy against ε as records, one per radius, in both norms."""
    from test_autoattack import linear_case

    for norm, arg in (("Linf", "linf_eps"), ("L2", "l2_eps")):
        model, x, labels, radius = linear_case(classes=3, n=6, seed=1, norm=norm)
        radii = [0.9 * float(radius.min()), 1.1 * float(radius.max())]
        records = benchmark(
            model, x, labels, threat_models=("clean", norm), autoattack_attacks=("apgd-ce",), **{arg: radii}
        )
        curve = [
            (r["budget"], r["value"]) for r in records if r["threat_model"] == norm and r["metric"] == "robust_accuracy"
        ]
        assert [value for _, value in curve] == [1.0, 0.0], (norm, radius, curve)
        assert [budget.split(",")[0] for budget, _ in curve] == [f"eps={e:.6g}" for e in radii]
    with pytest.raises(ValueError, match=r"l2_eps: expected positive radii"):
        benchmark(model, x, labels, threat_models="L2", l2_eps=[0.5, -1.0])
    with pytest.raises(ValueError, match=r"linf_eps: expected radii in \(0, 1\]"):
        benchmark(model, x, labels, threat_models="Linf", linf_eps=[])


def test_radii_may_be_numpy_and_a_bad_lambda_is_named(small):
    x, y = banded(6, seed=13)
    records = benchmark(
        small,
        x,
        y,
        threat_models=("linf", "L2"),
        linf_eps=np.array([0.01, 0.02]),
        l2_eps=np.float32(0.3),
        linf_steps=1,
        autoattack_steps=1,
        square_queries=1,
        autoattack_attacks=("apgd-ce",),
    )
    budgets = sorted({r["budget"].split(",")[0] for r in records if r["metric"] == "asr"})
    assert budgets == ["eps=0.01", "eps=0.02", "eps=0.3"]
    with pytest.raises(ValueError, match="rp2_lambda: expected a finite number >= 0, got 'x'"):
        benchmark(small, x, y, threat_models="clean", rp2_lambda="x")


def test_importing_art_leaves_the_callers_log_handlers_open(tmp_path):
    """ART's import runs logging.config.dictConfig, which closed a root FileHandler(mode="w") for good."""
    log = tmp_path / "mine.log"
    run_python(
        "-c",
        f"""
import logging
handler = logging.FileHandler({str(log)!r}, mode="w")
logging.getLogger().addHandler(handler)
from blurnet_tf.art_logging import import_art
import_art()
import art  # noqa: F401  (already imported: a no-op)
logging.getLogger().warning("still written after ART's import")
handler.flush()
""",
    )
    assert "still written after ART's import" in log.read_text()


@pytest.mark.parametrize(
    "flag, line",
    [
        ("--linf_eps=", "error: --linf_eps: expected radii in (0, 1], got none"),
        ("--l2_eps=nan", "error: --l2_eps: expected positive radii, got nan"),
        ("--threat_models=Linf,bogus", "error: --threat_models: unknown ['bogus']; choose from clean, Linf, L2"),
        (None, "x_only.npz: expected an array named y or labels (--data); has ['x']"),
    ],
)
def test_benchmark_flags_and_data_are_refused_before_tensorflow_loads(tmp_path, flag, line):
    data = tmp_path / ("x_only.npz" if flag is None else "data.npz")
    arrays = {"x": np.zeros((2, SIZE, SIZE, 3), np.float32)} | ({} if flag is None else {"y": np.zeros(2, int)})
    np.savez(data, **arrays)
    args = ["-m", "blurnet_tf.cli.benchmark", "--model=original", f"--data={data}", f"--out={tmp_path / 'o'}"]
    proc = run_python(*args, *([flag] if flag else []), check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and line in lines[0], proc.stderr
    assert not (tmp_path / "o").exists()


def test_a_model_with_its_own_layer_loads_with_custom_objects_and_is_named_without(tmp_path, monkeypatch):
    """Issue 42: a .keras model holding a layer class of the user's (not registered with Keras) is refused in
    one line that names the class and the way in; given as custom_objects (the binary's --custom_objects=
    module:Name) it loads under safe_mode and scores as the original."""
    import importlib

    import keras

    from blurnet_tf.cli.benchmark import _custom_objects
    from blurnet_tf.errors import DataError, SettingError
    from blurnet_tf.registry import load_model

    (tmp_path / "my_layers.py").write_text(
        "import keras\n\n\nclass Doubling(keras.layers.Layer):\n    def call(self, x):\n        return 2.0 * x\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    Doubling = importlib.import_module("my_layers").Doubling  # the user's module, written above

    model = keras.Sequential([keras.Input((4, 4, 1)), keras.layers.Flatten(), keras.layers.Dense(3), Doubling()])
    model.save(tmp_path / "mine.keras")
    with pytest.raises(DataError, match=r"Could not locate class 'Doubling'.*--custom_objects=my_layers:Doubling\)\)$"):
        load_model(tmp_path / "mine.keras")
    custom = _custom_objects(["my_layers:Doubling"])
    assert custom == {"Doubling": Doubling}
    x = np.random.default_rng(0).random((5, 4, 4, 1), np.float32)
    np.testing.assert_allclose(load_model(tmp_path / "mine.keras", custom_objects=custom)(x), model(x), rtol=1e-6)
    assert _custom_objects(["my_layers"]) is None  # a bare module: imported for what it registers
    (tmp_path / "raising.py").write_text("raise RuntimeError('boom at import')\n")
    (tmp_path / "exiting.py").write_text("raise SystemExit(0)\n")
    for bad, problem in (
        ("no_such_module:X", "No module named 'no_such_module'"),
        ("my_layers:Nope", "Nope"),
        ("raising:X", "RuntimeError: boom at import"),  # a traceback and exit 1 before (the sweep)
        ("exiting:X", "SystemExit: 0"),  # exit 0 with no output before
    ):
        with pytest.raises(SettingError, match=f"--custom_objects: cannot import '{bad}' .*{problem}"):
            _custom_objects([bad])


def test_the_physical_threat_model_scores_the_eot_sticker_on_every_grid_condition(small):
    from blurnet_tf.attacks import STATIONARY_GRID

    x, y = banded(12, seed=9)
    settings = dict(threat_models=("physical",), targets=[1, 3], seeds=(0,), rp2_epochs=2, physical_samples=2)
    records = benchmark(small, x, y, mask=sticker_mask(), **settings)
    cells = [r for r in records if r["metric"] == "asr"]
    assert len(cells) == 2 * len(STATIONARY_GRID)  # every target under every condition
    for target in (1, 3):
        own = [r["value"] for r in cells if r["target"] == target]
        grid = next(r for r in records if r["metric"] == "grid_asr" and r["target"] == target)
        assert grid["value"] == pytest.approx(np.mean(own))  # the grid's mean is the mean over its conditions
    average = next(r for r in records if r["metric"] == "avg_grid_asr")
    assert average["value"] == pytest.approx(np.mean([r["value"] for r in records if r["metric"] == "grid_asr"]))
    untouched = benchmark(small, x, y, mask=np.zeros((SIZE, SIZE, 3)), **settings)  # no sticker, no movement
    assert all(r["value"] == 0.0 for r in untouched if r["threat_model"] == "physical")
    with pytest.raises(ValueError, match="'physical' needs mask="):
        benchmark(small, x, y, threat_models=("physical",), targets=[1])


def test_a_batch_size_gives_the_same_records_where_the_attacks_draw_nothing_at_random(small):
    """PGD from the image and DDN are per image and draw nothing: chunks of 7 give every record unchanged."""
    x, y = banded(20, seed=10)
    settings = dict(threat_models=("linf", "l2"), linf_eps=0.1, linf_steps=4, linf_random_start=False, ddn_steps=10)
    whole, chunked = benchmark(small, x, y, **settings), benchmark(small, x, y, batch_size=7, verbose=0, **settings)
    assert [(r["metric"], r["value"]) for r in chunked] == [(r["metric"], r["value"]) for r in whole]
    with pytest.raises(ValueError, match="batch_size: expected an integer >= 1 or None"):
        benchmark(small, x, y, threat_models=("clean",), batch_size=0)
