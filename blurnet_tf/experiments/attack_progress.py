"""What a long run shows while it runs: tqdm bars (on a terminal only) and RP2's loss / ASR
curves as TensorBoard scalars, written once per finished attack from its stored histories."""

import os
import pathlib
import shutil
import tempfile

from tqdm.auto import tqdm

TENSORBOARD_DIR = "tensorboard"


def bar(total, desc, unit="it"):
    """A tqdm bar on stderr; silent when stderr is not a terminal (logs, CI, the pipeline's files)."""
    return tqdm(total=total, desc=desc, unit=unit, leave=False, dynamic_ncols=True, disable=None)


def epoch_callback(progress_bar):
    """rp2's progress hook -> the bar: advances by the epochs done since the last call."""
    last = {"done": 0}

    def update(done, epochs):
        if done < last["done"]:  # a new rp2 call (next target group) starts again at 0
            last["done"] = 0
        progress_bar.update(done - last["done"])
        last["done"] = done

    return update


def write_rp2_scalars(out, key, histories):
    """TensorBoard scalars rp2/lambda=<λ>/target_<t>/{loss,misclassified,targeted} per epoch, in
    <out>/tensorboard/<key>. Written to a temporary directory and renamed, so a reader sees all
    curves or none; an existing directory (same key = same settings, same curves) is kept."""
    import tensorflow as tf

    final = pathlib.Path(out) / TENSORBOARD_DIR / key
    if final.is_dir():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{key}-", dir=final.parent))
    try:
        writer = tf.summary.create_file_writer(str(tmp))
        with writer.as_default():
            for name, curves in sorted(histories.items()):
                lam, target = name.split("/")
                for metric, values in curves.items():
                    for epoch, value in enumerate(values):
                        tf.summary.scalar(f"rp2/lambda={lam}/target_{target}/{metric}", value, step=epoch)
        writer.close()
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp)
    return final
