"""Would the pipeline finish sooner running two steps at once? Times N copies of one quick step
(RP2 white-box on the original weights, 30 epochs; or a 3-epoch baseline training) run one after
another against the same N run together, with TensorFlow's default threads and with one intra-op
thread per process. Each copy writes its own temporary directory.

    python bench/step_concurrency.py [--step rp2|train] [--copies 2] [--repeats 2]
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from arguments import positive

COMMANDS = {
    "rp2": ["blurnet_tf.cli.attack", "--flagfile=flags/attacks/whitebox.flags", "--model=original", "--epochs=30"],
    "train": ["blurnet_tf.cli.train", "--flagfile=flags/models/baseline.flags", "--epochs=3"],
}
THREADS = {
    "default": {},
    "one intra-op thread": {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1", "OMP_NUM_THREADS": "1"},
}


def _start(command, env, root):
    out = tempfile.mkdtemp(dir=root)
    with open(os.path.join(out, "stderr.txt"), "w") as err:  # a file, not a pipe: a full pipe would stall a copy
        proc = subprocess.Popen(
            [sys.executable, "-m", *command, f"--out={out}"],
            env={**os.environ, **env, "TF_CPP_MIN_LOG_LEVEL": "2"},
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    proc.err_path = err.name
    return proc


def _wait(procs):
    for p in procs:
        if p.wait() != 0:
            sys.exit(f"error: a step failed: {open(p.err_path).read()[-2000:]}")


def timed(command, env, copies, together, root):
    started = time.perf_counter()
    if together:
        _wait([_start(command, env, root) for _ in range(copies)])
    else:
        for _ in range(copies):
            _wait([_start(command, env, root)])
    return time.perf_counter() - started


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--step", choices=sorted(COMMANDS), default="rp2")
    parser.add_argument("--copies", type=positive, default=2)
    parser.add_argument("--repeats", type=positive, default=2)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as root:
        for r in range(args.repeats):  # interleaved, so drift hits every variant alike
            for name, env in THREADS.items():
                for together in (False, True):
                    key = f"{name}, {'together' if together else 'one after another'}"
                    results.setdefault(key, []).append(timed(COMMANDS[args.step], env, args.copies, together, root))
                    print(f"repeat {r}: {key}: {results[key][-1]:.1f}s", flush=True)
    base = min(results["default, one after another"])
    print(
        json.dumps(
            {
                "step": args.step,
                "copies": args.copies,
                "seconds": results,
                "speed-up over default one after another (best of repeats)": {
                    k: round(base / min(v), 3) for k, v in results.items()
                },
            },
            indent=1,
        )
    )


if __name__ == "__main__":
    main()
