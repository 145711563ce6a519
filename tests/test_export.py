"""SavedModel export: reload in a fresh process that never imports blurnet_tf."""

import json

import numpy as np
import pytest

from conftest import run_python


def test_export_round_trip_gives_identical_predictions(tmp_path, original_model, victims):
    run_python("-m", "blurnet_tf.cli.export", "--model=original", f"--out={tmp_path / 'export'}")
    np.save(tmp_path / "victims.npy", victims)
    script = f"""
import json, sys
import numpy as np, tensorflow as tf
serve = tf.saved_model.load(r"{tmp_path / 'export'}").signatures["serving_default"]
p = serve(image=tf.constant(np.load(r"{tmp_path / 'victims.npy'}")))["probabilities"].numpy()
np.save(r"{tmp_path / 'probs.npy'}", p)
print(json.dumps({{"blurnet_tf_imported": "blurnet_tf" in sys.modules}}))
"""
    out = run_python("-c", script)
    assert json.loads(out.stdout.strip().splitlines()[-1]) == {"blurnet_tf_imported": False}
    served = np.load(tmp_path / "probs.npy")
    expected = original_model.predict(victims, verbose=0)
    expected = np.exp(expected - expected.max(1, keepdims=True))
    expected /= expected.sum(1, keepdims=True)
    np.testing.assert_allclose(served, expected, atol=1e-6)
    assert np.array_equal(served.argmax(1), expected.argmax(1))


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
