"""SavedModel export: reload in a fresh process that never imports blurnet_tf; --out is never
removed unless it is a SavedModel and --overwrite asks for it; bad requests are clear errors."""

import errno
import json
import os
import shutil

import numpy as np
import pytest

from conftest import run_python

from blurnet_tf.data import CLASS_NAMES


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export of the RP2 authors' model through the binary (with its TFLite file), shared by
    the tests below."""
    out = tmp_path_factory.mktemp("exported") / "export"
    proc = run_python("-m", "blurnet_tf.cli.export", "--model=original", f"--out={out}", "--tflite")
    assert not proc.stderr.strip(), proc.stderr[-2000:]  # no INFO line of TensorFlow's saving (issue 43)
    return out


def _snapshot(path):
    """Every file's bytes under `path` (or the file itself), to check that nothing was touched."""
    if path.is_file():
        return path.read_bytes()
    return {p.relative_to(path).as_posix(): p.read_bytes() if p.is_file() else None for p in sorted(path.rglob("*"))}


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.endswith((".tmp", ".old")))


def test_export_round_trip_gives_identical_predictions(tmp_path, exported, original_model, victims):
    np.save(tmp_path / "victims.npy", victims)
    script = f"""
import json, sys
import numpy as np, tensorflow as tf
serve = tf.saved_model.load(r"{exported}").signatures["serving_default"]
out = serve(image=tf.constant(np.load(r"{tmp_path / "victims.npy"}")))
np.save(r"{tmp_path / "probs.npy"}", out["probabilities"].numpy())
np.save(r"{tmp_path / "logits.npy"}", out["logits"].numpy())
print(json.dumps({{"blurnet_tf_imported": "blurnet_tf" in sys.modules, "classes": out["classes"].numpy().tolist(),
                  "dtype": out["classes"].dtype.name, "names": [n.decode() for n in out["class_names"].numpy()]}}))
"""
    out = run_python("-c", script)
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["blurnet_tf_imported"] is False
    served = np.load(tmp_path / "probs.npy")
    served_logits = np.load(tmp_path / "logits.npy")
    logits = original_model.predict(victims, verbose=0)
    np.testing.assert_allclose(served_logits, logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(served, _softmax(logits), atol=1e-6)
    np.testing.assert_allclose(served, _softmax(served_logits), atol=1e-6)
    assert np.array_equal(served.argmax(1), logits.argmax(1))
    assert answer["dtype"] == "int64" and answer["classes"] == logits.argmax(1).tolist()
    assert answer["names"] == [CLASS_NAMES[c] for c in answer["classes"]]
    assert "stop" in answer["names"]  # the victims are stop signs


def _softmax(logits):
    e = np.exp(logits - logits.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _tflite_outputs(path, images):
    import warnings

    import tensorflow as tf

    with warnings.catch_warnings():  # tf.lite.Interpreter's deprecation notice (LiteRT): still the stock one
        warnings.simplefilter("ignore", UserWarning)
        runner = tf.lite.Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    return runner(image=images)


def test_tflite_file_gives_the_keras_logits(exported, original_model, victims):
    out = _tflite_outputs(exported / "model.tflite", victims[:8])
    logits = original_model.predict(victims[:8], verbose=0)
    np.testing.assert_allclose(out["logits"], logits, atol=1e-4)
    np.testing.assert_allclose(out["probabilities"], _softmax(logits), atol=1e-5)
    assert out["classes"].tolist() == logits.argmax(1).tolist()
    assert [n.decode() for n in out["class_names"]] == [CLASS_NAMES[c] for c in logits.argmax(1)]


def test_export_tflite_converts_the_blur_layer_and_never_overwrites_unasked(tmp_path):
    from blurnet_tf.errors import DataError
    from blurnet_tf.registry import build_model
    from blurnet_tf.registry.savedmodel_export import export_tflite

    model = build_model("conv", kernel_size=3)  # BlurDepthwiseConv2D after the first layer
    images = np.random.default_rng(0).random((4, 32, 32, 3)).astype(np.float32)
    path = export_tflite(model, tmp_path / "conv.tflite", CLASS_NAMES)
    np.testing.assert_allclose(_tflite_outputs(path, images)["logits"], model(images).numpy(), atol=1e-4)
    before = path.read_bytes()
    with pytest.raises(DataError, match="already exists; pass --overwrite"):
        export_tflite(model, path, CLASS_NAMES)
    with pytest.raises(DataError, match="is a directory"):
        export_tflite(model, tmp_path, CLASS_NAMES)
    assert path.read_bytes() == before
    export_tflite(model, path, CLASS_NAMES, overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conv.tflite"]


def test_mismatched_class_names_are_refused_before_anything_is_written(tmp_path, original_model):
    from blurnet_tf.registry.savedmodel_export import export_probabilities, export_tflite

    with pytest.raises(ValueError, match="has 17 names but model 'original_lisa_cnn' has 18 outputs"):
        export_probabilities(original_model, tmp_path / "export", class_names=CLASS_NAMES[1:])
    with pytest.raises(ValueError, match="has 19 names but"):
        export_tflite(original_model, tmp_path / "model.tflite", class_names=CLASS_NAMES + ("extra",))
    with pytest.raises(ValueError, match="not one string"):
        export_probabilities(original_model, tmp_path / "export", class_names="stop")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("ending", ["dense_softmax", "softmax_layer"])
def test_a_model_ending_in_softmax_serves_its_pre_softmax_logits(tmp_path, ending):
    import keras
    import tensorflow as tf

    from blurnet_tf.registry.savedmodel_export import export_probabilities

    inputs = keras.Input((8, 8, 1))
    features = keras.layers.Flatten()(inputs)
    dense = keras.layers.Dense(3, activation="softmax" if ending == "dense_softmax" else None)
    outputs = dense(features) if ending == "dense_softmax" else keras.layers.Softmax()(dense(features))
    model = keras.Model(inputs, outputs)
    images = np.random.default_rng(1).random((5, 8, 8, 1)).astype(np.float32)
    logits = images.reshape(5, -1) @ dense.kernel.numpy() + dense.bias.numpy()
    serve = tf.saved_model.load(str(export_probabilities(model, tmp_path / "export", class_names=("a", "b", "c"))))
    out = serve.signatures["serving_default"](image=tf.constant(images))
    np.testing.assert_allclose(out["logits"].numpy(), logits, atol=1e-5)
    np.testing.assert_allclose(out["probabilities"].numpy(), model(images).numpy(), atol=1e-6)
    assert [n.decode() for n in out["class_names"].numpy()] == ["abc"[c] for c in logits.argmax(1)]


def test_failed_tflite_conversion_leaves_the_previous_export(tmp_path, exported, original_model, monkeypatch):
    import tensorflow as tf

    from blurnet_tf.errors import DataError
    from blurnet_tf.registry.savedmodel_export import export_probabilities

    shutil.copytree(exported, tmp_path / "export")
    before = _snapshot(tmp_path / "export")

    def refuse(*args, **kwargs):
        raise RuntimeError("op not supported\nmore detail")

    monkeypatch.setattr(tf.lite.TFLiteConverter, "from_saved_model", refuse)
    with pytest.raises(DataError, match="model.tflite: cannot convert the model to TFLite \\(op not supported\\)$"):
        export_probabilities(original_model, tmp_path / "export", overwrite=True, tflite=True)
    assert _snapshot(tmp_path / "export") == before
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_export_refuses_a_run_directory_and_leaves_it_intact(tmp_path):
    run = tmp_path / "runs" / "baseline"
    run.mkdir(parents=True)
    (run / "model.keras").write_bytes(b"the user's trained model")
    (run / "history.json").write_text("{}")
    before = _snapshot(run)
    out = run_python("-m", "blurnet_tf.cli.export", "--model=original", f"--out={run}", check=False)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    last = out.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: {run}: is not empty and not a SavedModel"), last
    assert _snapshot(run) == before
    assert _leftovers(run.parent) == []


def test_export_refuses_what_it_must_not_replace(tmp_path, exported, original_model):
    from blurnet_tf.errors import DataError
    from blurnet_tf.registry.savedmodel_export import export_probabilities

    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "todo.txt").write_text("keep me")
    (tmp_path / "notes" / "model.keras").write_bytes(b"a run directory, say")
    (tmp_path / "a_file").write_bytes(b"keep me too")
    shutil.copytree(exported, tmp_path / "previous")
    cases = [
        ("notes", False, "not a SavedModel"),
        ("notes", True, "never replaced, even with --overwrite"),
        ("a_file", False, "not a directory"),
        ("a_file", True, "not a directory"),
        ("previous", False, "pass --overwrite"),
    ]
    for name, overwrite, problem in cases:
        before = _snapshot(tmp_path / name)
        with pytest.raises(DataError, match=problem) as raised:
            export_probabilities(original_model, tmp_path / name, overwrite=overwrite)
        assert raised.value.path == str(tmp_path / name)
        assert _snapshot(tmp_path / name) == before
        assert _leftovers(tmp_path) == []


def test_overwrite_replaces_a_previous_savedmodel(tmp_path, exported, original_model):
    from blurnet_tf.registry.savedmodel_export import export_probabilities

    shutil.copytree(exported, tmp_path / "export")
    (tmp_path / "export" / "stale.txt").write_text("from the previous export")
    export_probabilities(original_model, tmp_path / "export", overwrite=True)
    assert not (tmp_path / "export" / "stale.txt").exists()
    assert (tmp_path / "export" / "saved_model.pb").is_file()
    assert _leftovers(tmp_path) == []


def test_failed_replace_puts_the_old_savedmodel_back(tmp_path, exported, original_model, monkeypatch):
    from blurnet_tf.errors import DataError
    from blurnet_tf.registry.savedmodel_export import export_probabilities

    shutil.copytree(exported, tmp_path / "export")
    before = _snapshot(tmp_path / "export")
    real_replace = os.replace

    def replace(src, dst):  # the new SavedModel cannot be renamed into place
        if str(src).endswith(".tmp"):
            raise OSError(errno.EIO, "Input/output error")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(DataError, match="cannot write the SavedModel"):
        export_probabilities(original_model, tmp_path / "export", overwrite=True)
    assert _snapshot(tmp_path / "export") == before
    assert _leftovers(tmp_path) == []


@pytest.mark.slow
def test_unwritable_out_gives_one_line_error_and_exit_2():
    out = run_python("-m", "blurnet_tf.cli.export", "--model=original", "--out=/proc/blurnet-export", check=False)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: /proc/blurnet-export: cannot write")
    assert not os.path.exists("/proc/blurnet-export")


@pytest.mark.slow
def test_unsafe_or_missing_model_files_give_one_line_errors(tmp_path):
    out = run_python("-m", "blurnet_tf.cli.evaluate", f"--model={tmp_path / 'nothing'}", check=False)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'nothing'}")
    (tmp_path / "junk.keras").write_text("not a zip")
    out = run_python("-m", "blurnet_tf.cli.evaluate", f"--model={tmp_path / 'junk.keras'}", check=False)
    assert out.returncode == 2 and "junk.keras: not a Keras model (expected a .keras archive" in out.stderr


def test_lambda_layers_are_refused_by_safe_mode(tmp_path):
    import keras

    from blurnet_tf.errors import DataError
    from blurnet_tf.registry import load_model

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(DataError, match="lambda.keras: cannot load model"):
        load_model(tmp_path / "lambda.keras")
