"""A pipeline step for the scheduler tests (`PYTHONPATH=tests python -m step_probe --out=DIR [--sleep=S] [--fail]`):
records when it ran in DIR/ran.json, or exits 3."""

import json
import os
import pathlib
import sys
import time

args = dict(a.split("=", 1) if "=" in a else (a, "") for a in sys.argv[1:])
started = time.time()
time.sleep(float(args.get("--sleep", 0)))
if "--fail" in args:
    sys.exit(3)
(pathlib.Path(args["--out"]) / "ran.json").write_text(json.dumps({"start": started, "end": time.time(),
                                                                        "intra_op_threads": os.environ.get("TF_NUM_INTRAOP_THREADS")}))
