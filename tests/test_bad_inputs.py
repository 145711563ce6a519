"""Bad input, every binary: one line `error: <flag or file>: <what was expected>` on stderr, exit
status 2, never a traceback; nothing the user made is deleted; every write is atomic.

Range checks are tested in-process on the settings dataclasses: a binary start costs seconds of
TensorFlow import. Each binary runs only a few times, to pin the end-to-end form; those runs are
started together in the background (`binaries`, two at a time) with the module's first test, so
they run while the in-process tests do, and the tests at the end of the file collect them.
Export, serving and training resume are covered in their own test files.
"""

import concurrent.futures
import dataclasses
import errno
import json
import math
import os
import pathlib
import re
import subprocess
import sys
import threading

import cv2
import numpy as np
import pytest

from blurnet_tf.errors import DataError, SettingError
from conftest import ROOT, run_python

NAN, INF = math.nan, math.inf
TINY_ATTACK = ("--model=original", "--flagfile=flags/attacks/whitebox.flags", "--targets=12", "--epochs=2")
UNWRITABLE = "/proc/blurnet_test/out"  # mkdir fails there, whoever runs the tests


def assert_bad_input(proc, prefix):
    """Exit status 2, stderr's last line `error: <prefix>...`, the only error line; no traceback."""
    detail = f"exit {proc.returncode}\nstdout: {proc.stdout[-1500:]}\nstderr: {proc.stderr[-3000:]}"
    assert proc.returncode == 2, detail
    assert "Traceback" not in proc.stderr, detail
    lines = proc.stderr.strip().splitlines()
    assert lines and lines[-1].startswith(f"error: {prefix}"), detail
    assert sum(line.startswith("error:") for line in lines) == 1, detail
    return lines[-1]


def assert_no_work(proc):
    """Nothing was computed: no attack group, no epoch, no evaluation was printed."""
    for sign_of_work in ("targets [", "ASR", "Epoch", "legit accuracy", "wrote "):
        assert sign_of_work not in proc.stdout, proc.stdout


def snapshot(directory):
    """{relative path: bytes} of every file under directory."""
    directory = pathlib.Path(directory)
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()}


def finished_pid():
    """The PID of a process that has exited (a stale lock's owner)."""
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def grey_mask_png(path):
    """A 32x32 single-channel PNG with a horizontal 0..255 gradient; returns its pixels."""
    pixels = np.tile(np.linspace(0, 255, 32).round().astype(np.uint8), (32, 1))
    assert cv2.imwrite(str(path), pixels)
    return pixels


def wrong_models(folder):
    """{name: path} of models no LISA command can score: a zip holding only a text file, a .keras cut
    in half, a plain Keras model with 64x64x3 input, one with LISA's input but 10 classes, and an MNIST
    run directory (its metrics.json says so)."""
    import zipfile

    import keras

    from blurnet_tf import rundir

    folder.mkdir(parents=True)
    paths = {name: folder / f"{name}.keras" for name in ("text", "cut", "big", "ten", "maps", "two_inputs", "uint8")}
    with zipfile.ZipFile(paths["text"], "w") as archive:
        archive.writestr("notes.txt", "not a model\n")
    for name, shape, classes in (("big", (64, 64, 3), 18), ("ten", (32, 32, 3), 10)):
        keras.Sequential([keras.Input(shape), keras.layers.Flatten(), keras.layers.Dense(classes)]).save(paths[name])
    image = keras.Input((32, 32, 3))
    keras.Model(image, keras.layers.Conv2D(18, 3, padding="same")(image)).save(paths["maps"])
    second = keras.Input((32, 32, 3))
    keras.Model(
        [image, second], keras.layers.Dense(18)(keras.layers.Flatten()(keras.layers.Add()([image, second])))
    ).save(paths["two_inputs"])
    pixels = keras.Input((32, 32, 3), dtype="uint8")
    keras.Model(pixels, keras.layers.Dense(18)(keras.layers.Flatten()(keras.ops.cast(pixels, "float32")))).save(
        paths["uint8"]
    )
    whole = paths["ten"].read_bytes()
    paths["cut"].write_bytes(whole[: len(whole) // 2])
    paths["mnist_run"] = folder / "mnist_run"
    paths["mnist_run"].mkdir()
    keras.Sequential([keras.Input((28, 28, 1)), keras.layers.Flatten(), keras.layers.Dense(10)]).save(
        paths["mnist_run"] / rundir.MODEL_FILE
    )
    rundir.ModelRecord(legit_accuracy=0.9, test_images=10, dataset="mnist").write(
        paths["mnist_run"] / rundir.METRICS_FILE
    )
    return paths


def users_run_dir(path):
    """A directory of the user's own: a model.keras and a metrics.json no blurnet_tf command wrote."""
    path.mkdir()
    (path / "model.keras").write_bytes(b"the user's model\n")
    (path / "metrics.json").write_text('{"accuracy": 0.5}\n')
    return path


def _refuse_constant(constant):
    raise ValueError(f"non-strict JSON constant {constant}")


# ---------------------------------------------------------------------------------------------
# The binary runs, in the background.


class _Background:
    """Binary runs in fresh processes, `workers` at a time, output to files (no pipe to fill)."""

    def __init__(self, log_dir, workers=2):
        self.log_dir = log_dir
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=workers)
        self.lock = threading.Lock()
        self.running = []
        self.stopping = False
        self.futures = {}
        self.prepared = {}

    def start(self, name, *args, prepare=None, env=None):
        """Queues `python args...`; `prepare()` runs just before it, its value kept for the test."""
        self.futures[name] = self.pool.submit(self._run, name, args, prepare, env or {})

    def _run(self, name, args, prepare, env):
        if prepare is not None:
            self.prepared[name] = prepare()
        with open(self.log_dir / f"{name}.stdout", "w+") as out, open(self.log_dir / f"{name}.stderr", "w+") as err:
            with self.lock:
                if self.stopping:
                    raise RuntimeError("stopped before it started")
                proc = subprocess.Popen(
                    [sys.executable, *args],
                    cwd=ROOT,
                    stdout=out,
                    stderr=err,
                    text=True,
                    env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **env},
                )
                self.running.append(proc)
            proc.wait()
            out.seek(0)
            err.seek(0)
            return subprocess.CompletedProcess(proc.args, proc.returncode, out.read(), err.read())

    def result(self, name, timeout=600):
        return self.futures[name].result(timeout)

    def stop(self):
        with self.lock:
            self.stopping = True
            for proc in self.running:
                if proc.poll() is None:
                    proc.kill()
        self.pool.shutdown(wait=True, cancel_futures=True)


@pytest.fixture(scope="module")
def binaries(tmp_path_factory):
    """(runs, paths): every binary run of this file, queued at once."""
    base = tmp_path_factory.mktemp("binaries")
    paths = {
        name: base / name
        for name in (
            "tiny",
            "lambdas",
            "stop",
            "busy",
            "mask",
            "grey_out",
            "train_epochs",
            "model",
            "mnist_out",
            "work",
            "results",
        )
    }
    paths["mask"] = base / "grey.png"
    paths["missing"] = base / "missing.keras"
    grey_mask_png(paths["mask"])
    paths["tiny"].mkdir()
    (paths["tiny"] / ".lock").write_text(str(finished_pid()))  # left by a process that has exited
    paths["busy"].mkdir()
    (paths["busy"] / ".lock").write_text(str(os.getpid()))  # held by this (live) test process
    attack, train = ("-m", "blurnet_tf.cli.attack"), ("-m", "blurnet_tf.cli.train")
    evaluate, reproduce = ("-m", "blurnet_tf.cli.evaluate"), ("-m", "blurnet_tf.cli.reproduce")
    models = wrong_models(base / "models")
    (models["mnist_run"] / ".written-by.json").write_text('{"writer": "train"}')  # made by `train`
    paths.update(models)
    paths["user_run"] = users_run_dir(base / "user_run")
    paths["user_json"] = base / "mine.json"
    paths["user_json"].write_text('{"mine": true}\n')
    paths["a_file"] = base / "a_file.txt"
    paths["a_file"].write_text("mine\n")
    paths["busy_work"] = base / "busy_work"
    paths["busy_work"].mkdir()
    (paths["busy_work"] / ".lock").write_text(str(os.getpid()))  # a runner (this live test process) holds it
    runs = _Background(base)
    tiny = TINY_ATTACK[1:]  # without --model
    _not_ray = _http1_listener()
    try:
        runs.start("tiny_attack", *attack, *TINY_ATTACK, f"--out={paths['tiny']}")
        runs.start("attack_lambdas", *attack, *TINY_ATTACK, "--lambdas=abc", f"--out={paths['lambdas']}")
        runs.start("attack_stop", *attack, "--model=original", "--targets=14", f"--out={paths['stop']}")
        runs.start("attack_unwritable", *attack, *TINY_ATTACK, f"--out={UNWRITABLE}")
        runs.start("attack_busy", *attack, *TINY_ATTACK, f"--out={paths['busy']}")
        runs.start("attack_grey_mask", *attack, *TINY_ATTACK, f"--mask={paths['mask']}", f"--out={paths['grey_out']}")
        runs.start("train_epochs", *train, "--epochs=0", f"--out={paths['train_epochs']}")
        runs.start(
            "train_unwritable", *train, "--epochs=1", "--max_train_images=16", "--batch_size=8", f"--out={UNWRITABLE}"
        )
        runs.start(
            "mnist_attacks",
            "-m",
            "blurnet_tf.cli.mnist_attacks",
            "--model=original",  # a model file that exists: the bad --attacks is what is refused
            "--attacks=clean,foo",
            f"--out={paths['mnist_out']}",
        )
        runs.start("evaluate", "-m", "blurnet_tf.cli.evaluate", f"--model={paths['missing']}")
        runs.start(
            "reproduce",
            "-m",
            "blurnet_tf.cli.reproduce",
            "--profile=smoke",
            "--stages=train,bogus",
            f"--work_dir={paths['work']}",
            f"--results_dir={paths['results']}",
        )
        # Another attack (target 1, not 12) into the first one's directory, once that has finished.
        runs.start(
            "second_attack",
            *attack,
            "--model=original",
            "--flagfile=flags/attacks/whitebox.flags",
            "--targets=1",
            "--epochs=2",
            f"--out={paths['tiny']}",
            prepare=lambda: (runs.result("tiny_attack"), snapshot(paths["tiny"])),
        )
        for name in BINARY_CASES:
            runs.start(
                f"attack_{name}_model",
                *attack,
                f"--model={models[name]}",
                *tiny,
                "--targets=15",
                f"--out={base / ('out_' + name)}",
            )
        runs.start("evaluate_ten_model", *evaluate, f"--model={models['ten']}")
        runs.start(
            "attack_ten_source",
            *attack,
            "--model=original",
            *tiny,
            "--mode=transfer",  # after the flagfile
            f"--source_model={models['ten']}",
            f"--out={base / 'out_source'}",
        )
        runs.start(
            "mnist_attacks_lisa_model",
            "-m",
            "blurnet_tf.cli.mnist_attacks",
            f"--model={models['ten']}",
            "--attacks=clean",
            f"--out={base / 'out_mnist'}",
        )
        runs.start("train_users_dir", *train, f"--out={paths['user_run']}", "--epochs=1", "--max_train_images=16")
        runs.start("evaluate_users_json", *evaluate, "--model=original", f"--out={paths['user_json']}")
        runs.start(
            "reproduce_second_runner",
            *reproduce,
            "--profile=smoke",
            f"--work_dir={paths['busy_work']}",
            f"--results_dir={base / 'results_second'}",
        )
        runs.start(
            "reproduce_results_file",
            *reproduce,
            "--profile=smoke",
            f"--work_dir={base / 'work_rf'}",
            f"--results_dir={paths['a_file']}",
        )
        runs.start(
            "reproduce_report_work_file",
            *reproduce,
            "--profile=smoke",
            "--report_only",
            f"--work_dir={paths['a_file']}",
            f"--results_dir={base / 'results_wf'}",
        )
        paths["finished_results"] = base / "finished_results"
        (paths["finished_results"] / "smoke").mkdir(parents=True)
        for name, text in (("results.json", FINISHED_RECORDS), ("REPORT.md", "the finished REPORT.md\n")):
            (paths["finished_results"] / "smoke" / name).write_text(text)  # as results/quick is in a fresh clone
        runs.start(
            "reproduce_report_only_over_a_report",
            *reproduce,
            "--profile=smoke",
            "--report_only",
            f"--work_dir={base / 'work_none'}",
            f"--results_dir={paths['finished_results']}",
        )
        runs.start(
            "reproduce_seed_too_big",
            *reproduce,
            "--profile=smoke",
            "--seeds=0,4294967296",
            f"--work_dir={base / 'work_seed'}",
            f"--results_dir={base / 'results_seed'}",
        )
        runs.start(
            "train_thread_variable", *train, f"--out={base / 'out_threads'}", env={"TF_NUM_INTRAOP_THREADS": "abc"}
        )
        runs.start(
            "missing_flagfile",
            *attack,
            f"--flagfile={base / 'missing.flags'}",
            "--model=original",
            f"--out={base / 'out_flagfile'}",
        )
        (base / "latin1.flags").write_bytes(b"--epochs=\xff\xfe\n")
        runs.start("latin1_flagfile", *train, f"--flagfile={base / 'latin1.flags'}", f"--out={base / 'out_latin1'}")
        runs.start("unknown_flag", *train, "--epoch=3", f"--out={base / 'out_unknown'}")
        runs.start(
            "export_maps_model",
            "-m",
            "blurnet_tf.cli.export",
            f"--model={models['maps']}",
            f"--out={base / 'export_maps'}",
        )
        runs.start(
            "reproduce_dead_address",
            *reproduce,
            "--profile=smoke",
            "--address=127.0.0.1:1",
            f"--work_dir={base / 'work_addr'}",
            f"--results_dir={base / 'results_addr'}",
        )
        runs.start(
            "reproduce_malformed_address",
            *reproduce,
            "--profile=smoke",
            "--address=foo:bar",
            f"--work_dir={base / 'work_addr'}",
            f"--results_dir={base / 'results_addr'}",
        )
        runs.start(
            "reproduce_malformed_ray_address",
            *reproduce,
            "--profile=smoke",
            f"--work_dir={base / 'work_addr'}",
            f"--results_dir={base / 'results_addr'}",
            env={"RAY_ADDRESS": "http://x"},
        )
        paths["not_ray"] = f"127.0.0.1:{_not_ray.getsockname()[1]}"
        runs.start(
            "reproduce_not_ray",
            *reproduce,
            "--profile=smoke",
            f"--address={paths['not_ray']}",
            f"--work_dir={base / 'work_addr'}",
            f"--results_dir={base / 'results_addr'}",
        )
        paths["users_work"] = base / "users_work"
        paths["users_work"].mkdir()
        (paths["users_work"] / "thesis.txt").write_text("mine\n")
        (paths["users_work"] / "drafts" / "sub").mkdir(parents=True)  # a step record of no step of the plan
        (paths["users_work"] / "drafts" / "sub" / "step.json").write_text('{"name": "x", "seconds": 1}\n')
        runs.start(
            "reproduce_users_work_dir",
            *reproduce,
            "--profile=smoke",
            f"--work_dir={paths['users_work']}",
            f"--results_dir={base / 'results_uw'}",
        )
        paths["users_results"] = base / "users_results"
        (paths["users_results"] / "smoke").mkdir(parents=True)
        (paths["users_results"] / "REPORT.md").write_text("# my notes\n")
        runs.start(
            "reproduce_users_top_report",
            *reproduce,
            "--profile=smoke",
            f"--work_dir={base / 'work_ur'}",
            f"--results_dir={paths['users_results']}",
        )
        paths["users_tables"] = base / "users_tables"
        (paths["users_tables"] / "smoke").mkdir(parents=True)
        (paths["users_tables"] / "smoke" / "tables.json").write_text('{"mine": 1}\n')
        runs.start(
            "reproduce_users_profile_results",
            *reproduce,
            "--profile=smoke",
            f"--work_dir={base / 'work_ut'}",
            f"--results_dir={paths['users_tables']}",
        )
        runs.start(
            "reproduce_into_a_training_run",
            *reproduce,
            "--profile=smoke",
            f"--work_dir={models['mnist_run']}",
            "--stages=train",
            f"--results_dir={base / 'results_tr'}",
        )
        yield runs, paths
    finally:
        runs.stop()
        _not_ray.close()


FINISHED_RECORDS = '{"schema": 1, "commit": "0000000", "dirty": false, "records": []}\n'


def _http1_listener():
    """A TCP port that answers, but as an HTTP/1 server, not as Ray's gRPC (the listening socket; the caller
    closes it)."""
    import socket

    server = socket.create_server(("127.0.0.1", 0))

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:  # closed
                return
            with conn:
                conn.recv(64)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    return server


@pytest.fixture(scope="module", autouse=True)
def _start_binaries_first(request):
    """Queues the binary runs with the module's first test when any selected test needs them."""
    if any(
        "binaries" in getattr(item, "fixturenames", ())
        for item in request.session.items
        if getattr(item, "module", None) is request.module
    ):
        request.getfixturevalue("binaries")


# absl parses the flags before cli.run's guard sees them: a bad enum value, a non-number or a missing
# required flag exits 1 with "FATAL Flags parsing error: ..." and a second line of help. (Cheap: the
# flags are parsed before TensorFlow is imported.)
ABSL_PARSE_CASES = [
    ("attack", ("--model=original", "--mode=bogus", "--out={tmp}"), "--mode"),
    ("attack", ("--model=original",), "--out"),
    ("train", ("--epochs=abc", "--out={tmp}"), "--epochs"),
    ("mnist_attacks", ("--model={tmp}", "--images=many", "--out={tmp}"), "--images"),
    ("evaluate", (), "--model"),
    ("reproduce", ("--profile=bogus",), "--profile"),
    ("reproduce", ("--stages=",), "--stages"),
    ("reproduce", ("--steps=,",), "--steps"),
    ("reproduce", ("--cpus_per_step=inf",), "--cpus_per_step"),
    ("reproduce", ("--cpus_per_step=1e-5",), "--cpus_per_step"),
    ("reproduce", ("--jobs=1e15",), "--jobs"),
    ("reproduce", ("--gpus_per_step=nan",), "--gpus_per_step"),
]


@pytest.mark.parametrize(
    "binary,args,flag", ABSL_PARSE_CASES, ids=[f"{b} {' '.join(a)}" for b, a, _ in ABSL_PARSE_CASES]
)
def test_flag_parse_errors_follow_the_standard(tmp_path, binary, args, flag):
    args = [a.replace("{tmp}", str(tmp_path / "x")) for a in args]
    proc = run_python("-m", f"blurnet_tf.cli.{binary}", *args, check=False)
    assert_bad_input(proc, f"{flag}:")
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------------------------------------
# (a) Range checks, in-process: each settings dataclass refuses a bad value naming its field.


def _ids(cases):
    return [",".join(f"{k}={v!r}" for k, v in kwargs.items()) for _, kwargs in cases]


def _check_setting(make, field, kwargs):
    with pytest.raises(SettingError) as err:
        make(**kwargs)
    assert err.value.field == field
    assert str(err.value).startswith(f"--{field}: ")
    assert err.value.problem


STICKER_CASES = [
    ("mode", dict(mode="bogus")),
    ("mode", dict(mode="pgd")),  # PGD is its own experiment (PgdAttack)
    ("lambdas", dict(lambdas=())),
    ("lambdas", dict(lambdas=(-0.1,))),
    ("lambdas", dict(lambdas=(0.002, NAN))),
    ("lambdas", dict(lambdas=(INF,))),
    ("targets", dict(targets=())),
    ("targets", dict(targets=(18,))),
    ("targets", dict(targets=(-1,))),
    ("targets", dict(targets=(14,))),  # the victims' true class, stop
    ("targets", dict(targets=(1, 12, 1))),
    ("epochs", dict(epochs=0)),
    ("epochs", dict(epochs=-5)),
    ("lr", dict(lr=0.0)),
    ("lr", dict(lr=-0.1)),
    ("lr", dict(lr=NAN)),
    ("lr", dict(lr=INF)),
    ("norm", dict(norm="linf")),
    ("noise_clip", dict(noise_clip=0.0)),
    ("noise_clip", dict(noise_clip=INF)),
    ("noise_clip", dict(noise_clip=NAN)),
    ("dct_dim", dict(mode="lowfreq", dct_dim=0)),
    ("dct_dim", dict(mode="lowfreq", dct_dim=33)),
    ("source_model", dict(mode="transfer")),
    ("source_model", dict(mode="transfer", source_model="")),
    ("regulariser", dict(mode="adaptive", regulariser="l2")),
    ("mask_threshold", dict(mask_threshold=0.0)),
    ("mask_threshold", dict(mask_threshold=1.0)),
    ("mask_threshold", dict(mask_threshold=1.5)),
    ("mask_threshold", dict(mask_threshold=NAN)),
    ("precision", dict(precision="float16")),
    ("physical_samples", dict(physical_samples=-1)),
    ("physical_samples", dict(physical_samples=100000)),  # each view is a resampling in the graph: it never ended
    ("physical_samples", dict(physical_samples=1.0)),
    ("seed", dict(seed=2**31)),  # RP2's stateless seeds are int32: a traceback from TensorFlow before
]


@pytest.mark.parametrize("field,kwargs", STICKER_CASES, ids=_ids(STICKER_CASES))
def test_sticker_attack_refuses(field, kwargs):
    from blurnet_tf.experiments.rp2_stickers import StickerAttack

    _check_setting(lambda **kw: StickerAttack(model="original", **kw), field, kwargs)


def test_sticker_attack_accepts_the_paper_settings_and_every_mode():
    from blurnet_tf.experiments.rp2_stickers import ALL_TARGETS, StickerAttack

    assert StickerAttack(model="original").targets == ALL_TARGETS
    StickerAttack(model="original", mode="transfer", source_model="runs/baseline")
    StickerAttack(model="original", mode="lowfreq", dct_dim=1)
    StickerAttack(model="original", mode="lowfreq", dct_dim=32)
    StickerAttack(model="original", mode="adaptive", regulariser="tik_pseudo")
    StickerAttack(
        model="original",
        lambdas=(0.0, 0.002),
        targets=(0, 17),
        mask_threshold=0.5,
        norm="l1",
        precision="mixed_bfloat16",
    )


def test_sticker_attack_refuses_targets_per_call_before_touching_out(tmp_path):
    from blurnet_tf.experiments.rp2_stickers import StickerAttack

    out = tmp_path / "attack"
    with pytest.raises(SettingError) as err:
        StickerAttack(model="original", targets=(12,), epochs=1).run(out, targets_per_call=0)
    assert err.value.field == "targets_per_call"
    assert not out.exists()


PGD_CASES = [
    ("pgd_eps", dict(pgd_eps=0.0)),
    ("pgd_eps", dict(pgd_eps=-8 / 255)),
    ("pgd_eps", dict(pgd_eps=1.5)),
    ("pgd_eps", dict(pgd_eps=NAN)),
    ("pgd_step", dict(pgd_step=0.0)),
    ("pgd_step", dict(pgd_step=0.5)),  # larger than the radius
    ("pgd_step", dict(pgd_step=NAN)),
    ("pgd_steps", dict(pgd_steps=0)),
    ("precision", dict(precision="bfloat16")),
]


@pytest.mark.parametrize("field,kwargs", PGD_CASES, ids=_ids(PGD_CASES))
def test_pgd_attack_refuses(field, kwargs):
    from blurnet_tf.experiments.pgd_linf import PgdAttack

    _check_setting(lambda **kw: PgdAttack(model="original", **kw), field, kwargs)


def test_pgd_attack_accepts_the_paper_settings():
    from blurnet_tf.experiments.pgd_linf import PgdAttack

    PgdAttack(model="original")
    PgdAttack(model="original", pgd_eps=1.0, pgd_step=1.0, pgd_steps=1, precision="mixed_bfloat16")


TRAINING_CASES = [
    ("dataset", dict(dataset="cifar10")),
    ("defence", dict(defence="no_such_defence")),
    ("epochs", dict(epochs=0)),
    ("batch_size", dict(batch_size=0)),
    ("learning_rate", dict(learning_rate=0.0)),
    ("learning_rate", dict(learning_rate=-1e-3)),
    ("learning_rate", dict(learning_rate=NAN)),
    ("learning_rate", dict(learning_rate=INF)),
    ("test_fraction", dict(test_fraction=0.0)),
    ("test_fraction", dict(test_fraction=1.0)),
    ("test_fraction", dict(test_fraction=NAN)),
    ("validation_fraction", dict(validation_fraction=-0.1)),
    ("validation_fraction", dict(validation_fraction=1.0)),
    ("validation_fraction", dict(validation_fraction=NAN)),
    ("max_train_images", dict(max_train_images=-1)),
    ("precision", dict(precision="float64")),
    ("seed", dict(seed=2**32)),
    ("seed", dict(seed=-1)),
    ("split_seed", dict(split_seed=2**32)),
    ("alpha", dict(defence="tv", params={"alpha": -1.0})),
    ("alpha", dict(defence="tv", params={"alpha": NAN})),
    ("pgd_eps", dict(defence="adv_train", params={"pgd_eps": -0.1})),
    ("pgd_steps", dict(defence="adv_train", params={"pgd_steps": 0})),
    ("fgsm_eps", dict(defence="fgsm_train", params={"fgsm_eps": 5.0})),
    ("gn_sigma", dict(defence="defendpp", params={"gn_sigma": -1.0})),
    ("blur_sigma", dict(defence="conv", params={"blur_sigma": NAN})),
    ("tik_window", dict(defence="tik_hf", params={"tik_window": 0})),
    ("train_tracks", dict(train_tracks=0.0)),
    ("train_tracks", dict(train_tracks=1.5)),
    ("train_tracks", dict(train_tracks=NAN)),
    ("train_tracks", dict(dataset="mnist", train_tracks=0.5)),
    ("alpha_warmup", dict(alpha_warmup=-1)),
    ("alpha_warmup", dict(epochs=5, alpha_warmup=6)),
    ("alpha_warmup", dict(defence="tv", alpha_warmup=1.5)),
    ("alpha_warmup", dict(defence="baseline", alpha_warmup=1)),  # no feature-map penalty to ramp
]


@pytest.mark.parametrize("field,kwargs", TRAINING_CASES, ids=_ids(TRAINING_CASES))
def test_training_run_refuses(field, kwargs):
    from blurnet_tf.experiments.classifier_training import TrainingRun

    _check_setting(TrainingRun, field, kwargs)


def test_training_run_accepts_defaults_and_fills_the_test_fraction():
    from blurnet_tf import paper
    from blurnet_tf.experiments.classifier_training import TrainingRun

    assert TrainingRun().test_fraction == paper.LISA_TEST_FRACTION
    assert TrainingRun(dataset="mnist").test_fraction == paper.MNIST_TEST_FRACTION
    TrainingRun(
        epochs=1,
        batch_size=1,
        validation_fraction=0.0,
        max_train_images=0,
        test_fraction=0.5,
        precision="mixed_bfloat16",
    )


MNIST_CASES = [
    ("attacks", dict(attacks=("foo",))),
    ("attacks", dict(attacks=("clean", "pgd"))),
    ("images", dict(images=-1)),
]


@pytest.mark.parametrize("field,kwargs", MNIST_CASES, ids=_ids(MNIST_CASES))
def test_mnist_robustness_refuses(field, kwargs):
    from blurnet_tf.experiments.mnist_robustness import MnistRobustness

    _check_setting(lambda **kw: MnistRobustness(model="runs/mnist", **kw), field, kwargs)


BUDGET_FLOATS = ("fgsm_eps", "bim_eps", "bim_step", "cw_learning_rate", "l2_budget")
BUDGET_INTS = ("bim_steps", "cw_search", "cw_steps", "ddn_steps")
BUDGET_CASES = [(f, {f: v}) for f in BUDGET_FLOATS for v in (0.0, -0.1, NAN, INF)] + [
    (f, {f: v}) for f in BUDGET_INTS for v in (0, -1)
]


@pytest.mark.parametrize("field,kwargs", BUDGET_CASES, ids=_ids(BUDGET_CASES))
def test_attack_budget_refuses(field, kwargs):
    from blurnet_tf.evaluation.mnist_attack_suite import AttackBudget

    _check_setting(AttackBudget, field, kwargs)


def test_mnist_robustness_accepts_defaults():
    from blurnet_tf.evaluation.mnist_attack_suite import ATTACKS, AttackBudget
    from blurnet_tf.experiments.mnist_robustness import MnistRobustness

    assert MnistRobustness(model="runs/mnist").attacks == ATTACKS
    MnistRobustness(model="runs/mnist", attacks=("clean",), images=0, budget=AttackBudget(bim_steps=1))


def test_list_flags_name_the_flag():
    from blurnet_tf import cli

    assert cli.float_list("lambdas", ["0.002", "1e-3"]) == (0.002, 0.001)
    assert cli.int_list("targets", "1,12") == (1, 12)
    for call, field in (
        (lambda: cli.float_list("lambdas", ["0.1", "abc"]), "lambdas"),
        (lambda: cli.int_list("targets", "1,x"), "targets"),
        (lambda: cli.int_list("targets", ""), "targets"),
        (lambda: cli.int_list("targets", "1.5"), "targets"),
    ):
        with pytest.raises(SettingError) as err:
            call()
        assert err.value.field == field
    with pytest.raises(SettingError, match="got an empty value"):  # absl strips `--snapshot_epochs=" "` to ''
        cli.int_list("snapshot_epochs", "")


# ---------------------------------------------------------------------------------------------
# Masks, in-process.


def test_grey_mask_needs_a_threshold(tmp_path):
    from blurnet_tf.data.images import read_mask

    path = tmp_path / "grey.png"
    pixels = grey_mask_png(path)
    with pytest.raises(DataError) as err:
        read_mask(path)
    assert err.value.path == str(path)
    assert "--mask_threshold" in err.value.problem
    mask = read_mask(path, threshold=0.5)
    assert mask.shape == (32, 32, 3) and mask.dtype == np.float32
    expected = (pixels.astype(np.float32) / 255 > 0.5).astype(np.float32)
    np.testing.assert_array_equal(mask, np.repeat(expected[..., None], 3, axis=2))


def test_mask_files(tmp_path, data_dir):
    from blurnet_tf.data import load_mask
    from blurnet_tf.data.images import read_mask

    binary = np.zeros((32, 32), np.uint8)
    binary[8:16, 4:28] = 255
    cv2.imwrite(str(tmp_path / "bw.png"), binary)
    np.testing.assert_array_equal(read_mask(tmp_path / "bw.png")[..., 0], binary / 255)

    cv2.imwrite(str(tmp_path / "black.png"), np.zeros((32, 32), np.uint8))
    (tmp_path / "text.png").write_text("not an image\n")
    for name, problem in (
        ("black.png", "no set pixel"),
        ("text.png", "not a readable image"),
        ("missing.png", "file not found"),
    ):
        with pytest.raises(DataError) as err:
            read_mask(tmp_path / name)
        assert err.value.path == str(tmp_path / name) and problem in err.value.problem

    rectangles = load_mask(data_dir, "rectangles")  # anti-aliased edge pixels count as binary
    assert set(np.unique(rectangles)) == {0.0, 1.0}


# ---------------------------------------------------------------------------------------------
# (c) files.py: atomic writes, strict JSON, the run lock.


def test_write_json_writes_non_finite_numbers_as_null(tmp_path):
    from blurnet_tf import files

    path = tmp_path / "r.json"
    files.write_json(
        path,
        {
            "nan": NAN,
            "inf": [INF, -INF, 1.5],
            "np": np.float32("nan"),
            "array": np.array([np.inf, 2.0]),
            "ok": np.float64(3.0),
            "n": np.int64(4),
        },
    )
    data = json.loads(path.read_text(), parse_constant=_refuse_constant)
    assert data == {"nan": None, "inf": [None, None, 1.5], "np": None, "array": [None, 2.0], "ok": 3.0, "n": 4}
    assert files.read_json(path) == data
    assert os.listdir(tmp_path) == ["r.json"]


class _DiskFullFile:
    """A file whose write stores half the data, then fails as on a full disk."""

    def __init__(self, f):
        self.f = f

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.f.close()

    def write(self, data):
        self.f.write(data[: len(data) // 2])
        self.f.flush()
        raise OSError(errno.ENOSPC, "No space left on device")

    def flush(self):
        self.f.flush()

    def fileno(self):
        return self.f.fileno()


@pytest.mark.parametrize("failing", ["write", "rename"])
def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path, monkeypatch, failing):
    from blurnet_tf import files

    path = tmp_path / "results.json"
    path.write_text('{"old": true}\n')
    if failing == "write":
        real_open = open
        monkeypatch.setattr(
            files, "open", lambda p, mode="r", *a, **k: _DiskFullFile(real_open(p, mode, *a, **k)), raising=False
        )
    else:

        def disk_full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(files.os, "replace", disk_full)
    with pytest.raises(DataError) as err:
        files.write_json(path, {"new": list(range(1000))})
    monkeypatch.undo()
    assert err.value.path == str(path)
    assert "No space left on device" in err.value.problem
    assert path.read_text() == '{"old": true}\n'
    assert sorted(os.listdir(tmp_path)) == ["results.json"]  # no .results.json.<pid>.tmp


def test_a_report_on_a_full_disk_is_whole_or_absent(tmp_path, monkeypatch):
    """files.all_or_nothing (issue 43): the disk fills at the third of four files; none of the old files
    is replaced, no temp file is left; without the fault all four land, and nothing before the block ends."""
    from blurnet_tf import files

    old = {name: f"old {name}\n" for name in ("REPORT.md", "results.json", "figures/a.png", "tables.json")}
    for name, text in old.items():
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text(text)
    real_open, opened = open, []

    def fills_up(p, mode="r", *a, **k):
        opened.append(p)
        f = real_open(p, mode, *a, **k)
        return _DiskFullFile(f) if len(opened) == 3 else f

    monkeypatch.setattr(files, "open", fills_up, raising=False)
    with pytest.raises(DataError) as err, files.all_or_nothing():
        for name in old:
            files.write_text(tmp_path / name, f"new {name}\n")
        assert not opened  # held, not written
    monkeypatch.undo()
    assert "No space left on device" in err.value.problem and err.value.path == str(tmp_path / "figures/a.png")
    assert {n: (tmp_path / n).read_text() for n in old} == old
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == sorted(pathlib.Path(n).name for n in old)
    with pytest.raises(RuntimeError), files.all_or_nothing():  # an error in the block: nothing written
        files.write_text(tmp_path / "REPORT.md", "half\n")
        raise RuntimeError("the report failed half-way")
    assert (tmp_path / "REPORT.md").read_text() == old["REPORT.md"]
    with files.all_or_nothing():
        for name in old:
            files.write_text(tmp_path / name, f"new {name}\n")
    assert {n: (tmp_path / n).read_text() for n in old} == {n: f"new {n}\n" for n in old}
    with pytest.raises(RuntimeError), files.all_or_nothing():  # a block inside another lands with the outer one
        with files.all_or_nothing():
            files.write_text(tmp_path / "REPORT.md", "inner\n")
        raise RuntimeError("the outer block failed after the inner one ended")
    assert (tmp_path / "REPORT.md").read_text() == "new REPORT.md\n"


def test_write_into_an_unwritable_place():
    from blurnet_tf import files

    with pytest.raises(DataError) as err:
        files.write_json(f"{UNWRITABLE}/r.json", {"a": 1})
    assert err.value.path == UNWRITABLE and "cannot create directory" in err.value.problem


def test_read_json_of_a_truncated_file(tmp_path):
    from blurnet_tf import files

    path = tmp_path / "results.json"
    files.write_json(path, {"rows": [{"target": t, "asr": 0.5} for t in range(17)]})
    truncated = path.read_bytes()[:100]
    path.write_bytes(truncated)
    with pytest.raises(DataError) as err:
        files.read_json(path)
    assert err.value.path == str(path) and "not valid JSON" in err.value.problem
    assert path.read_bytes() == truncated  # left for the user to look at
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(DataError):
        files.read_json(tmp_path / "binary.json")
    assert files.read_json(tmp_path / "absent.json") is None
    with pytest.raises(DataError) as err:
        files.read_json(tmp_path / "absent.json", missing_ok=False)
    assert "file not found" in err.value.problem


_HOLD_LOCK = """
import sys, time
from blurnet_tf.locks import RunLock
RunLock(sys.argv[1]).__enter__()
print("locked", flush=True)
time.sleep(120)
"""


def test_run_lock_refuses_a_live_holder_and_takes_over_after_a_kill(tmp_path):
    from blurnet_tf import locks

    run = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD_LOCK, str(run)], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(DataError) as err:
            with locks.RunLock(run):
                pass
        assert err.value.path == str(run) and f"in use by another run (PID {holder.pid})" in err.value.problem
        assert (run / ".lock").read_text().split()[0] == str(holder.pid)
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    with locks.RunLock(run):  # its holder was killed: the lock is stale
        assert (run / ".lock").read_text().split()[0] == str(os.getpid())
    assert not (run / ".lock").exists()


@pytest.mark.parametrize("content", ["stale", "", "garbage"])
def test_run_lock_takes_over_a_stale_or_unreadable_lock(tmp_path, content):
    from blurnet_tf import locks

    (tmp_path / ".lock").write_text(str(finished_pid()) if content == "stale" else content)
    with locks.RunLock(tmp_path):
        assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())
    assert not (tmp_path / ".lock").exists()


def test_run_lock_of_another_host_is_never_stale_and_one_of_an_earlier_boot_is(tmp_path):
    """On a directory several nodes share, a PID can be checked only on the machine that wrote it."""
    import socket

    from blurnet_tf import locks

    dead = finished_pid()
    (tmp_path / ".lock").write_text(f"{dead} other-node/some-boot")
    with pytest.raises(DataError, match=rf"in use by a run on other-node \(PID {dead}\)"):
        with locks.RunLock(tmp_path):
            pass
    assert (tmp_path / ".lock").read_text() == f"{dead} other-node/some-boot"
    (tmp_path / ".lock").write_text(f"{os.getpid() + 1} {socket.gethostname()}/an-earlier-boot")
    with locks.RunLock(tmp_path):  # this host, before its last reboot: gone, whatever runs under that PID now
        assert (tmp_path / ".lock").read_text().split()[0] == str(os.getpid())
    (tmp_path / ".lock").mkdir()
    with pytest.raises(DataError, match="is a directory, not a run lock"):
        with locks.RunLock(tmp_path):
            pass


def test_attack_out_naming_a_file_is_refused_and_kept(tmp_path):
    from blurnet_tf.experiments.rp2_stickers import StickerAttack

    out = tmp_path / "notes.txt"
    out.write_text("mine\n")
    with pytest.raises(DataError) as err:
        StickerAttack(model="original", targets=(12,), epochs=1).run(out, log=lambda message: None)
    assert err.value.path == str(out) and "cannot create directory" in err.value.problem
    assert out.read_text() == "mine\n"


def test_save_png_reads_back_equal(tmp_path):
    from blurnet_tf import files

    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
    files.save_png(tmp_path / "images" / "adv.png", pixels.astype(np.float32) / 255)
    back = cv2.imread(str(tmp_path / "images" / "adv.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(back[..., ::-1], pixels)
    assert os.listdir(tmp_path / "images") == ["adv.png"]


def test_failed_model_save_leaves_no_temp_file(tmp_path, monkeypatch):
    import keras

    from blurnet_tf.registry.model_files import load_model, save_model

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    target = tmp_path / "run" / "model.keras"
    save_model(model, target)  # the good case
    good = target.read_bytes()
    np.testing.assert_allclose(
        load_model(target).predict(np.ones((1, 4)), verbose=0), model.predict(np.ones((1, 4)), verbose=0), rtol=1e-6
    )

    def partial_save(path, *args, **kwargs):
        pathlib.Path(path).write_bytes(b"PK\x03\x04partial")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(model, "save", partial_save)
    with pytest.raises(DataError) as err:
        save_model(model, target)
    assert err.value.path == str(target) and "No space left on device" in err.value.problem
    assert os.listdir(target.parent) == ["model.keras"]
    assert target.read_bytes() == good


# ---------------------------------------------------------------------------------------------
# (d) A truncated LISA array cache is moved aside and rebuilt; (e) a missing LISA class.


def test_truncated_lisa_cache_is_moved_aside_and_rebuilt(data_dir, tmp_path, monkeypatch, capfd):
    from blurnet_tf.data import load_lisa_split

    cache_dir = tmp_path / "cache"  # this test's own cache: the session's is shared by other tests
    monkeypatch.setenv("BLURNET_CACHE", str(cache_dir))
    first = load_lisa_split(data_dir)
    (cache,) = (cache_dir / "arrays").glob("lisa-*.npz")
    size = cache.stat().st_size
    with open(cache, "r+b") as f:
        f.truncate(size // 2)
    capfd.readouterr()

    second = load_lisa_split(data_dir)
    for a, b in zip(first[:2], second[:2]):
        np.testing.assert_array_equal(a.images, b.images)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.names, b.names)
    assert first[2] == second[2]
    aside = cache.with_name(cache.name + ".corrupt-0")
    assert aside.is_file() and aside.stat().st_size == size // 2  # moved aside, never deleted
    assert "unreadable array cache" in capfd.readouterr().err
    with np.load(cache, allow_pickle=False) as z:  # rebuilt, whole
        assert len(z["labels"]) == len(first[0]) + len(first[1])


def _lisa_without(data_dir, dest, dropped, per_class=25):
    """data_dir's LISA tree of class folders without class folder `dropped` (symlinks to the first
    `per_class` PNGs of each folder), plus rp2 linked."""
    for split in ("train", "val"):
        for folder in sorted((data_dir / "lisa" / split).iterdir()):
            if not folder.is_dir() or folder.name == dropped:
                continue
            (dest / "lisa" / split / folder.name).mkdir(parents=True)
            for png in sorted(folder.iterdir())[:per_class]:
                (dest / "lisa" / split / folder.name / png.name).symlink_to(png)
    (dest / "rp2").symlink_to(data_dir / "rp2")
    return dest


def test_missing_lisa_class_is_refused_unless_allowed(data_dir, tmp_path, monkeypatch):
    from blurnet_tf.data import CLASS_NAMES, load_lisa_split

    monkeypatch.setenv("BLURNET_CACHE", str(tmp_path / "cache"))
    data = _lisa_without(pathlib.Path(data_dir), tmp_path / "data", dropped="16")  # folder 16: yield
    with pytest.raises(DataError) as err:
        load_lisa_split(data)
    assert err.value.path == str(data / "lisa")
    assert "yield" in err.value.problem and "--allow_missing_classes" in err.value.problem

    train, test, report = load_lisa_split(data, allow_missing_classes=True)
    labels = set(train.labels.tolist()) | set(test.labels.tolist())
    assert CLASS_NAMES.index("yield") not in labels
    assert labels == {i for i, name in enumerate(CLASS_NAMES) if name not in ("unnamed", "yield", "speedLimitUrdbl")}
    assert "yield" not in report["per_class"]


def test_settings_dataclasses_are_frozen():
    """Settings are keys of results: a checked value cannot be changed afterwards."""
    from blurnet_tf.experiments.rp2_stickers import StickerAttack

    attack = StickerAttack(model="original")
    with pytest.raises(dataclasses.FrozenInstanceError):
        attack.epochs = 0


# ---------------------------------------------------------------------------------------------
# (b) End to end, each binary: the runs queued by `binaries`.


@pytest.mark.slow
def test_attack_bad_lambdas(binaries):
    runs, paths = binaries
    proc = runs.result("attack_lambdas")
    assert "'abc'" in assert_bad_input(proc, "--lambdas:")
    assert not paths["lambdas"].exists()


@pytest.mark.slow
def test_attack_target_is_the_victims_class(binaries):
    runs, paths = binaries
    proc = runs.result("attack_stop")
    assert "stop" in assert_bad_input(proc, "--targets:")
    assert not paths["stop"].exists()


@pytest.mark.slow
def test_train_bad_epochs(binaries):
    runs, paths = binaries
    assert_bad_input(runs.result("train_epochs"), "--epochs:")
    assert not paths["train_epochs"].exists()


@pytest.mark.slow
def test_mnist_attacks_unknown_attack(binaries):
    runs, paths = binaries
    assert "foo" in assert_bad_input(runs.result("mnist_attacks"), "--attacks:")
    assert not paths["mnist_out"].exists()


@pytest.mark.slow
def test_evaluate_missing_model_file(binaries):
    runs, paths = binaries
    assert "model file not found" in assert_bad_input(runs.result("evaluate"), f"{paths['missing']}:")


@pytest.mark.slow
def test_reproduce_unknown_stage(binaries):
    runs, paths = binaries
    assert "bogus" in assert_bad_input(runs.result("reproduce"), "--stages:")
    assert not paths["work"].exists() and not paths["results"].exists()


@pytest.mark.slow
def test_reproduce_on_a_ray_address_nothing_answers_at(binaries):
    runs, paths = binaries
    assert "Connection refused" in assert_bad_input(
        runs.result("reproduce_dead_address"), "--address: no Ray cluster answers at 127.0.0.1:1"
    )
    assert not (paths["tiny"].parent / "work_addr").exists()


@pytest.mark.slow
@pytest.mark.parametrize("binary", ["attack", "train"])
def test_unwritable_out_fails_before_any_work(binaries, binary):
    runs, _ = binaries
    proc = runs.result(f"{binary}_unwritable")
    assert "cannot create directory" in assert_bad_input(proc, f"{UNWRITABLE}:")
    assert_no_work(proc)
    assert not os.path.exists(UNWRITABLE)


@pytest.mark.slow
def test_attack_grey_mask_refused_without_threshold(binaries):
    runs, paths = binaries
    proc = runs.result("attack_grey_mask")
    assert "--mask_threshold" in assert_bad_input(proc, f"{paths['mask']}:")
    assert_no_work(proc)
    assert not (paths["grey_out"] / "results.json").exists()
    assert not (paths["grey_out"] / ".lock").exists()  # the refused run let go of its directory
    assert paths["mask"].is_file()


@pytest.mark.slow
def test_attack_refuses_a_directory_in_use(binaries):
    runs, paths = binaries
    proc = runs.result("attack_busy")
    line = assert_bad_input(proc, f"{paths['busy']}:")
    assert f"in use by another run (PID {os.getpid()})" in line
    assert_no_work(proc)
    assert snapshot(paths["busy"]) == {".lock": str(os.getpid()).encode()}  # the holder's lock is left alone


@pytest.mark.slow
def test_valid_tiny_attack_takes_over_a_stale_lock(binaries):
    runs, paths = binaries
    out, proc = paths["tiny"], runs.result("tiny_attack")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Traceback" not in proc.stderr
    results = json.loads((out / "results.json").read_text(), parse_constant=_refuse_constant)
    assert [row["target"] for row in results["rows"]] == [12]
    assert (out / "results.csv").is_file()
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name]


@pytest.mark.slow
def test_second_attack_into_the_same_out_is_refused(binaries):
    runs, paths = binaries
    proc = runs.result("second_attack")
    first, before = runs.prepared["second_attack"]
    assert first.returncode == 0, first.stderr[-3000:]
    assert "results.json" in before and ".lock" not in before  # the stale lock was taken over, then released
    assert "another attack" in assert_bad_input(proc, f"{paths['tiny']}:")
    assert_no_work(proc)
    assert snapshot(paths["tiny"]) == before  # results.json byte-identical, nothing added or removed


def test_attack_leaves_a_killed_attack_in_its_out_alone(tmp_path):
    """A killed attack's partial results (parts/ and its adversarial PNGs) are the user's too."""
    from blurnet_tf.experiments.rp2_stickers import StickerAttack

    out = tmp_path / "run"
    killed = StickerAttack(model="original", targets=(12,), epochs=3)
    (out / "parts").mkdir(parents=True)
    (out / "parts" / f"{killed.key}-12.json").write_text('{"rows": [], "history": {}, "noise_files": {}}\n')
    (out / "images").mkdir()
    assert cv2.imwrite(str(out / "images" / "lambda0.002_target12_0.png"), np.zeros((32, 32, 3), np.uint8))
    before = snapshot(out)
    try:
        StickerAttack(model="original", targets=(12,), epochs=2).run(out, save_images=1, log=lambda message: None)
    except DataError as exc:
        assert exc.path == str(out)
    after = snapshot(out)
    assert {name: after.get(name) for name in before} == before


def test_bench_scripts_refuse_a_bad_count_naming_the_flag(capsys):
    import argparse
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_arguments", ROOT / "bench" / "arguments.py")
    arguments = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(arguments)
    parser = argparse.ArgumentParser(prog="bf16_gate.py")
    parser.add_argument("--sweep_epochs", type=arguments.non_negative, default=0)
    parser.add_argument("--epochs", type=arguments.positive, default=300)
    parser.add_argument("--seeds", type=arguments.int_list, default=[0])
    parser.add_argument("--targets", type=arguments.targets, default="all")
    assert parser.parse_args(["--sweep_epochs", "0", "--epochs", "1"]) == argparse.Namespace(
        sweep_epochs=0, epochs=1, seeds=[0], targets="all"
    )
    assert parser.parse_args(["--seeds", "0,2", "--targets", "3,12"]).seeds == [0, 2]
    assert parser.parse_args(["--targets", "all"]).targets == "all"
    for bad in (
        ["--sweep_epochs", "-3"],
        ["--epochs", "0"],
        ["--epochs", "ten"],
        ["--seeds", "0,x"],
        ["--seeds", "-1"],
        ["--targets", "some"],
    ):
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args(bad)
        assert exit_.value.code == 2
        assert (
            capsys.readouterr()
            .err.strip()
            .splitlines()[-1]
            .startswith(f"bf16_gate.py: error: argument {bad[0]}: expected")
        )


# ---------------------------------------------------------------------------------------------
# (f) Wrong models, a directory of the user's, a second runner, paths checked first (issue 33).

WRONG_MODEL_PROBLEMS = {
    "text": "not a Keras model (the archive holds no config.json)",
    "cut": "not a Keras model (expected a .keras archive",
    "big": "expected a model of 32x32x3 images and 18 classes (LISA), found one taking 64x64x3",
    "ten": "expected a model of 32x32x3 images and 18 classes (LISA), found one taking "
    "32x32x3 images and scoring 10 classes",
    "mnist_run": "is a model trained on MNIST",
    "maps": "giving [N,classes] logits (2 or more classes), found input (None, 32, 32, 3) and "
    "output (None, 32, 32, 18)",
    "two_inputs": "expected an image classifier with one input and one output, found 2 input(s)",
    "uint8": "expected float images in [0,1] as input, found a uint8 input",
}
BINARY_CASES = ("text", "big", "ten", "mnist_run")  # the issue's cases, also through the attack binary


@pytest.fixture(scope="module")
def wrong(tmp_path_factory):
    return wrong_models(tmp_path_factory.mktemp("wrong") / "models")


@pytest.mark.parametrize("name", sorted(WRONG_MODEL_PROBLEMS))
def test_the_model_loader_refuses_what_the_command_cannot_score(wrong, name):
    from blurnet_tf.registry import LISA_MODEL, load_model

    with pytest.raises(DataError) as err:
        load_model(wrong[name], expect=LISA_MODEL)
    assert err.value.path.startswith(str(wrong[name])) and WRONG_MODEL_PROBLEMS[name] in err.value.problem
    assert "not found" not in err.value.problem


def test_the_model_loader_checks_mnist_models_and_the_original_weights(wrong):
    from blurnet_tf.registry import LISA_MODEL, MNIST_MODEL, load_model

    assert load_model(wrong["mnist_run"], expect=MNIST_MODEL).output_shape == (None, 10)
    for spec, problem in (
        (wrong["ten"], "28x28x1 images and 10 classes (MNIST), found one taking 32x32x3"),
        ("original", "is the RP2 authors' LISA-CNN"),
    ):
        with pytest.raises(DataError, match=re.escape(problem)):
            load_model(spec, expect=MNIST_MODEL)
    assert load_model(wrong["big"]).input_shape == (None, 64, 64, 3)  # no contract: any Keras model (export)
    with pytest.raises(DataError, match="model file not found"):
        load_model(wrong["text"].with_name("absent.keras"), expect=LISA_MODEL)


def test_a_model_link_that_leads_nowhere_is_named_before_tensorflow_loads(tmp_path):
    """A `--model` that is a symbolic-link loop or a broken link (issue 43): one line naming it, from every
    binary that takes a model, before TensorFlow is imported (the check is rundir.keras_archive)."""
    from blurnet_tf import cli

    loop, broken = tmp_path / "loop.keras", tmp_path / "broken.keras"
    loop.symlink_to(loop)
    broken.symlink_to(tmp_path / "gone.keras")
    for link in (loop, broken):
        with pytest.raises(DataError) as err:
            cli.check_model(str(link))
        assert err.value.path == str(link) and "symbolic link that leads to no file" in err.value.problem
    cli.check_model("original")  # the RP2 weights: found by the data directory, later
    script = (
        "import runpy, sys; sys.argv = ['evaluate', '--model=' + sys.argv[1]]\n"
        "try:\n    runpy.run_module('blurnet_tf.cli.evaluate', run_name='__main__')\n"
        "finally:\n    print('tensorflow' in sys.modules)"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(loop)], cwd=ROOT, capture_output=True, text=True)
    assert "symbolic link that leads to no file" in assert_bad_input(proc, f"{loop}:")
    assert proc.stdout.strip() == "False", proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize("name", BINARY_CASES)
def test_attack_refuses_a_wrong_model_in_one_line_before_any_work(binaries, name):
    runs, paths = binaries
    proc = runs.result(f"attack_{name}_model")
    assert WRONG_MODEL_PROBLEMS[name] in assert_bad_input(proc, str(paths[name]))
    assert_no_work(proc)
    assert not (paths["tiny"].parent / f"out_{name}").exists()  # no empty --out left behind


@pytest.mark.slow
@pytest.mark.parametrize(
    "run,model", [("evaluate_ten_model", "ten"), ("attack_ten_source", "ten"), ("mnist_attacks_lisa_model", "ten")]
)
def test_every_binary_that_takes_a_model_checks_it(binaries, run, model):
    runs, paths = binaries
    proc = runs.result(run)
    line = assert_bad_input(proc, str(paths[model]))
    assert "expected a model of" in line and ("MNIST" in line) == run.startswith("mnist")
    assert_no_work(proc)


def test_training_refuses_a_directory_holding_the_users_files(tmp_path):
    from blurnet_tf.experiments.classifier_training import TrainingRun

    user = users_run_dir(tmp_path / "mine")
    link = tmp_path / "link"
    link.symlink_to(user, target_is_directory=True)  # another way to point at the same directory
    before = snapshot(user)
    for out in (user, link):
        with pytest.raises(DataError) as err:
            TrainingRun(epochs=1, max_train_images=16).run(out, log=lambda m: None)
        assert err.value.path == str(out)
        assert "holds files `train` did not write (metrics.json, model.keras)" in err.value.problem
        assert "--overwrite" in err.value.problem
    assert snapshot(user) == before


@pytest.mark.slow
def test_overwrite_opens_a_directory_of_the_users_files_and_the_run_writes_there(tmp_path, data_dir):
    from blurnet_tf import locks, rundir
    from blurnet_tf.experiments.classifier_training import TrainingRun

    user = users_run_dir(tmp_path / "mine")
    (user / "notes.txt").write_text("keep me\n")
    locks.claim_dir(user, rundir.TRAIN_WRITER, overwrite=True)  # asked for: no refusal
    TrainingRun(epochs=1, max_train_images=16, batch_size=8).run(
        user, data_dir=data_dir, log=lambda m: None, overwrite=True
    )
    record = rundir.read_model(user)
    assert record is not None and record.epochs == 1 and 0.0 <= record.legit_accuracy <= 1.0
    assert locks.owner(user) == "train" and (user / "notes.txt").read_text() == "keep me\n"


def test_a_run_directory_belongs_to_the_command_that_made_it(tmp_path):
    from blurnet_tf import locks, rundir
    from blurnet_tf.experiments.rp2_stickers import StickerAttack

    run = tmp_path / "run"
    run.mkdir()
    for name in (locks.STEP_PENDING, locks.STEP_LOG, locks.LOCK_FILE):  # the pipeline's files beside a step
        (run / name).write_text("{}")
    locks.claim_dir(run, rundir.TRAIN_WRITER)
    locks.mark_owner(run, rundir.TRAIN_WRITER)
    (run / "model.keras").write_bytes(b"weights")
    locks.claim_dir(run, rundir.TRAIN_WRITER)  # its own: a resume
    with pytest.raises(DataError, match="was written by `train`, not `attack`"):
        StickerAttack(model="original", targets=(12,), epochs=1).run(run, log=lambda m: None)
    with pytest.raises(DataError, match="was written by `train`, not `attack`"):
        locks.claim_dir(run, locks.Writer("attack", {"model.keras": None}))  # a record proves only an unmarked run
    locks.claim_dir(run, rundir.ATTACK_WRITER, overwrite=True)  # asked for
    legacy = tmp_path / "legacy"  # made before the owner file: its own record is the proof
    legacy.mkdir()
    rundir.ModelRecord(legit_accuracy=0.5, test_images=1).write(legacy / rundir.METRICS_FILE)
    locks.claim_dir(legacy, rundir.TRAIN_WRITER)
    with pytest.raises(DataError, match=r"holds files `attack` did not write \(metrics.json\)"):
        locks.claim_dir(legacy, rundir.ATTACK_WRITER)


@pytest.mark.slow
def test_train_binary_refuses_the_users_directory_and_keeps_its_files(binaries):
    runs, paths = binaries
    proc = runs.result("train_users_dir")
    assert "--overwrite" in assert_bad_input(proc, f"{paths['user_run']}: holds files `train` did not write")
    assert_no_work(proc)
    assert snapshot(paths["user_run"]) == {"metrics.json": b'{"accuracy": 0.5}\n', "model.keras": b"the user's model\n"}


@pytest.mark.slow
def test_evaluate_out_never_replaces_a_file_it_did_not_write(binaries):
    runs, paths = binaries
    proc = runs.result("evaluate_users_json")
    assert "--overwrite" in assert_bad_input(proc, f"{paths['user_json']}: exists and was not written by an evaluation")
    assert_no_work(proc)
    assert paths["user_json"].read_text() == '{"mine": true}\n'


def test_a_pending_step_of_other_settings_is_moved_aside_with_the_users_file(tmp_path):
    from blurnet_tf.pipeline.steps import PENDING, Step, run_step

    out = tmp_path / "step"
    out.mkdir()
    (out / PENDING).write_text('{"key": "0123456789abcdef"}')
    (out / "notes.txt").write_text("mine\n")
    lines = []
    run_step(Step("demo/x", "demo", out, experiment=_Writes()), log=lines.append)
    aside = tmp_path / "step.superseded-0123456789abcdef"
    assert (aside / "notes.txt").read_text() == "mine\n" and (out / "result.txt").is_file()
    assert lines == [f"      demo/x: {out} holds unfinished work under other settings; moved to {aside}"]


@dataclasses.dataclass(frozen=True)
class _Writes:
    def run(self, out):
        (out / "result.txt").write_text("ok")


@pytest.mark.slow
def test_a_second_runner_on_one_work_directory_is_refused(binaries):
    runs, paths = binaries
    proc = runs.result("reproduce_second_runner")
    line = assert_bad_input(proc, f"{paths['busy_work']}: in use by another run (PID {os.getpid()})")
    assert "--work_dir" in line and " done in" not in proc.stdout
    assert snapshot(paths["busy_work"]) == {".lock": str(os.getpid()).encode()}


@pytest.mark.slow
@pytest.mark.parametrize(
    "run,flag", [("reproduce_results_file", "results_dir"), ("reproduce_report_work_file", "work_dir")]
)
def test_reproduce_checks_its_directories_before_the_first_step(binaries, run, flag):
    runs, paths = binaries
    proc = runs.result(run)
    assert f"is a file, not a directory (--{flag})" in assert_bad_input(proc, str(paths["a_file"]))
    assert "profile smoke" not in proc.stdout and paths["a_file"].read_text() == "mine\n"


@pytest.mark.slow
def test_reproduce_refuses_a_seed_beyond_32_bits_before_any_work(binaries):
    runs, paths = binaries
    proc = runs.result("reproduce_seed_too_big")
    assert_bad_input(proc, "--seeds: expected distinct integers in 0..4294967295, got 0,4294967296")
    assert "profile smoke" not in proc.stdout


@pytest.mark.slow
def test_report_only_never_replaces_a_finished_report_with_an_emptier_one(binaries):
    runs, paths = binaries
    proc = runs.result("reproduce_report_only_over_a_report")
    line = assert_bad_input(proc, f"{paths['finished_results'] / 'smoke'}: holds a report; --report_only would replace")
    assert "steps not finished in" in line and "choose another --results_dir" in line
    assert snapshot(paths["finished_results"]) == {
        "smoke/REPORT.md": b"the finished REPORT.md\n",
        "smoke/results.json": FINISHED_RECORDS.encode(),
    }


@pytest.mark.slow
@pytest.mark.parametrize(
    "run,where,problem",
    [
        ("reproduce_users_work_dir", "users_work", "holds files a reproduction did not write (drafts, thesis.txt)"),
        ("reproduce_users_top_report", "users_results", "REPORT.md: is not a report a reproduction wrote"),
        ("reproduce_users_profile_results", "users_tables", "smoke: holds files a report did not write"),
    ],
)
def test_reproduce_refuses_directories_holding_the_users_files(binaries, run, where, problem):
    runs, paths = binaries
    proc = runs.result(run)
    assert problem in assert_bad_input(proc, str(paths[where]))
    assert "profile smoke" not in proc.stdout
    assert (
        snapshot(paths[where])
        == {
            "users_work": {"thesis.txt": b"mine\n", "drafts/sub/step.json": b'{"name": "x", "seconds": 1}\n'},
            "users_results": {"REPORT.md": b"# my notes\n"},
            "users_tables": {"smoke/tables.json": b'{"mine": 1}\n'},
        }[where]
    )


@pytest.mark.slow
def test_reproduce_refuses_addresses_that_are_not_ray_at_once(binaries):
    runs, paths = binaries
    assert_bad_input(
        runs.result("reproduce_malformed_address"),
        "--address: expected host:port (port 1-65535), ray://host:port or 'auto', got 'foo:bar'",
    )
    assert_bad_input(
        runs.result("reproduce_malformed_ray_address"), "environment variable RAY_ADDRESS: expected host:port"
    )
    line = assert_bad_input(
        runs.result("reproduce_not_ray"), f"--address: no Ray cluster answers at {paths['not_ray']}"
    )
    assert "does not answer as Ray's gRPC server does" in line


def test_directory_flags_are_checked_without_creating_anything(tmp_path):
    from blurnet_tf import locks

    (tmp_path / "f").write_text("x")
    locks.check_writable_dir(tmp_path / "new" / "deeper", "work_dir")
    assert sorted(os.listdir(tmp_path)) == ["f"]
    with pytest.raises(DataError, match=r"lies under .*/f, which is a file, not a directory \(--work_dir\)"):
        locks.check_writable_dir(tmp_path / "f" / "run", "work_dir")
    with pytest.raises(DataError, match="is not writable"):
        locks.check_writable_dir("/proc/blurnet_test/out", "results_dir")


def test_a_refused_attack_leaves_no_empty_out(tmp_path):
    from blurnet_tf.experiments.rp2_stickers import StickerAttack

    out = tmp_path / "new" / "attack"
    with pytest.raises(DataError, match="file not found"):
        StickerAttack(model="original", targets=(12,), epochs=1, mask=str(tmp_path / "absent.png")).run(
            out, log=lambda m: None
        )
    assert not (tmp_path / "new").exists()


@pytest.mark.slow
def test_every_binary_checks_the_thread_variables_and_names_a_missing_flagfile(binaries):
    runs, paths = binaries
    line = assert_bad_input(runs.result("train_thread_variable"), "environment variable TF_NUM_INTRAOP_THREADS:")
    assert "expected a whole number >= 1, got 'abc'" in line
    missing = paths["tiny"].parent / "missing.flags"
    assert_bad_input(runs.result("missing_flagfile"), f"{missing}: cannot read this flagfile (no such file")


@pytest.mark.slow
def test_flagfiles_that_cannot_be_read_and_unknown_flags_get_the_standard_line(binaries):
    runs, paths = binaries
    latin1 = paths["tiny"].parent / "latin1.flags"
    assert "expected UTF-8 text" in assert_bad_input(
        runs.result("latin1_flagfile"), f"{latin1}: cannot read this flagfile"
    )
    assert_bad_input(runs.result("unknown_flag"), "--epoch: unknown flag")


@pytest.mark.slow
def test_export_refuses_a_model_that_is_not_an_image_classifier(binaries):
    runs, paths = binaries
    proc = runs.result("export_maps_model")
    assert WRONG_MODEL_PROBLEMS["maps"] in assert_bad_input(proc, str(paths["maps"]))
    assert not (paths["tiny"].parent / "export_maps").exists()


@pytest.mark.slow
def test_reproduce_refuses_a_work_directory_another_command_made(binaries):
    runs, paths = binaries
    before = snapshot(paths["mnist_run"])
    proc = runs.result("reproduce_into_a_training_run")
    assert "was written by `train`, not a reproduction" in assert_bad_input(proc, str(paths["mnist_run"]))
    assert snapshot(paths["mnist_run"]) == before


@pytest.mark.parametrize(
    "text,problem",
    [
        ("[1, 2]", "expected a JSON object, got list"),
        ('{"kind": "model"}', "missing legit_accuracy, test_images"),
        ('{"schema": "x"}', "its schema is 'x'"),
    ],
)
def test_a_record_of_the_wrong_shape_is_one_line_naming_the_file(tmp_path, text, problem):
    from blurnet_tf import rundir

    (tmp_path / "metrics.json").write_text(text)
    with pytest.raises(DataError) as err:
        rundir.read_model(tmp_path)
    assert err.value.path == str(tmp_path / "metrics.json") and problem in err.value.problem


def test_a_figure_on_a_full_disk_is_one_line_and_leaves_no_temp_file(tmp_path, monkeypatch):
    """Issue 43: matplotlib wrote its own temp PDF, which a full disk left behind with a traceback."""
    import matplotlib.pyplot as plt

    from blurnet_tf import files
    from blurnet_tf.reports import figures

    (tmp_path / "fig.png").write_bytes(b"the old figure")
    fig, ax = plt.subplots()
    ax.plot([0, 1], [0, 1])

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(files.os, "fsync", disk_full)
    with pytest.raises(DataError, match="No space left on device") as err:
        figures._save(fig, tmp_path / "fig.png", vector=True)
    assert err.value.path == str(tmp_path / "fig.png")
    assert sorted(os.listdir(tmp_path)) == ["fig.png"] and (tmp_path / "fig.png").read_bytes() == b"the old figure"
