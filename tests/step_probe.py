"""A pipeline step for the scheduler tests (`PYTHONPATH=tests python -m step_probe --out=DIR [--sleep=S] [--fail]`):
writes its pid to DIR/started.json, then records when it ran in DIR/ran.json, or exits 3."""

import json
import os
import pathlib
import sys
import time

from blurnet_tf.pipeline.step_process import die_with_runner

die_with_runner()  # as our binaries do
args = dict(a.split("=", 1) if "=" in a else (a, "") for a in sys.argv[1:])
out, started = pathlib.Path(args["--out"]), time.time()
(out / "started.json").write_text(json.dumps({"pid": os.getpid()}))
time.sleep(float(args.get("--sleep", 0)))
if "--fail" in args:
    sys.exit(3)
(out / "ran.json").write_text(
    json.dumps(
        {
            "start": started,
            "end": time.time(),
            "intra_op_threads": os.environ.get("TF_NUM_INTRAOP_THREADS"),
            "gpu_growth": os.environ.get("TF_FORCE_GPU_ALLOW_GROWTH"),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES"),
        }
    )
)
