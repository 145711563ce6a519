"""SavedModel export: reload in a fresh process that never imports blurnet_tf; --out is never
removed unless it is a SavedModel and --overwrite asks for it; bad requests are clear errors."""

import errno
import json
import os
import shutil

import numpy as np
import pytest

from conftest import run_python


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """One export of the RP2 authors' model through the binary, shared by the tests below."""
    out = tmp_path_factory.mktemp("exported") / "export"
    run_python("-m", "blurnet_tf.cli.export", "--model=original", f"--out={out}")
    return out


def _snapshot(path):
    """Every file's bytes under `path` (or the file itself), to check that nothing was touched."""
    if path.is_file():
        return path.read_bytes()
    return {p.relative_to(path).as_posix(): p.read_bytes() if p.is_file() else None
            for p in sorted(path.rglob("*"))}


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir() if p.name.endswith((".tmp", ".old")))


def test_export_round_trip_gives_identical_predictions(tmp_path, exported, original_model, victims):
    np.save(tmp_path / "victims.npy", victims)
    script = f"""
import json, sys
import numpy as np, tensorflow as tf
serve = tf.saved_model.load(r"{exported}").signatures["serving_default"]
out = serve(image=tf.constant(np.load(r"{tmp_path / 'victims.npy'}")))
np.save(r"{tmp_path / 'probs.npy'}", out["probabilities"].numpy())
np.save(r"{tmp_path / 'logits.npy'}", out["logits"].numpy())
print(json.dumps({{"blurnet_tf_imported": "blurnet_tf" in sys.modules}}))
"""
    out = run_python("-c", script)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"blurnet_tf_imported": False}
    served = np.load(tmp_path / "probs.npy")
    logits = original_model.predict(victims, verbose=0)
    np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), logits, rtol=1e-5, atol=1e-5)
    expected = np.exp(logits - logits.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(served, expected, atol=1e-6)
    assert np.array_equal(served.argmax(1), expected.argmax(1))


def test_served_signature_rejects_bad_images_and_the_process_survives(exported):
    # All cases in one process: the reload takes seconds. A good request after the bad ones shows
    # the process is intact (a rank-3 image used to abort it inside oneDNN).
    script = f"""
import json
import numpy as np, tensorflow as tf
serve = tf.saved_model.load(r"{exported}").signatures["serving_default"]
good = np.full((2, 32, 32, 3), 0.5, np.float32)
nan, inf = good.copy(), good.copy()
nan[0, 1, 2, 0], inf[1, 3, 4, 2] = np.nan, np.inf
cases = {{"nan": nan, "inf": inf, "0-255": good * 255, "negative": good - 1, "rank 3": good[0],
         "28x28x3": np.zeros((1, 28, 28, 3), np.float32), "1 channel": np.zeros((1, 32, 32, 1), np.float32),
         "empty batch": good[:0]}}
errors = {{}}
for name, image in cases.items():
    try:
        serve(image=tf.constant(image))
        errors[name] = "accepted"
    except tf.errors.InvalidArgumentError as exc:
        errors[name] = exc.message
errors["good"] = serve(image=tf.constant(good))["probabilities"].shape.as_list()
print(json.dumps(errors))
"""
    out = run_python("-c", script)
    errors = json.loads(out.stdout.strip().splitlines()[-1])
    assert errors.pop("good") == [2, 18]
    wanted = {"nan": "NaN or infinite", "inf": "NaN or infinite", "0-255": "values > 1",
              "negative": "negative values", "rank 3": "got shape] [32 32 3]",
              "28x28x3": "got shape] [1 28 28 3]", "1 channel": "got shape] [1 32 32 1]",
              "empty batch": "batch is empty"}
    for name, text in wanted.items():
        assert text in errors[name], (name, errors[name])
    for name in ("rank 3", "28x28x3", "1 channel"):
        assert "must have rank 4 and shape [N,32,32,3]" in errors[name]


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
    cases = [("notes", False, "not a SavedModel"), ("notes", True, "never replaced, even with --overwrite"),
             ("a_file", False, "not a directory"), ("a_file", True, "not a directory"),
             ("previous", False, "pass --overwrite")]
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


def test_unwritable_out_gives_one_line_error_and_exit_2():
    out = run_python("-m", "blurnet_tf.cli.export", "--model=original", "--out=/proc/blurnet-export",
                     check=False)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("error: /proc/blurnet-export: cannot write")
    assert not os.path.exists("/proc/blurnet-export")


def test_unsafe_or_missing_model_files_give_one_line_errors(tmp_path):
    out = run_python("-m", "blurnet_tf.cli.evaluate", f"--model={tmp_path / 'nothing'}", check=False)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith(f"error: {tmp_path / 'nothing'}")
    (tmp_path / "junk.keras").write_text("not a zip")
    out = run_python("-m", "blurnet_tf.cli.evaluate", f"--model={tmp_path / 'junk.keras'}", check=False)
    assert out.returncode == 2 and "junk.keras: cannot load model" in out.stderr


def test_lambda_layers_are_refused_by_safe_mode(tmp_path):
    import keras

    from blurnet_tf.errors import DataError
    from blurnet_tf.registry import load_model

    inputs = keras.Input((32, 32, 3))
    model = keras.Model(inputs, keras.layers.Lambda(lambda t: t * 2)(inputs))
    model.save(tmp_path / "lambda.keras")
    with pytest.raises(DataError, match="lambda.keras: cannot load model"):
        load_model(tmp_path / "lambda.keras")
