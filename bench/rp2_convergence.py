"""The fair-verdict pilot (issue 41), part one: does white-box RP2 converge, and does bf16 keep its curve?

    python bench/rp2_convergence.py [--rows baseline,conv_7,tv_1e-4,tik_hf] [--train_epochs 30]
                                    [--epochs 300] [--precisions float32,mixed_bfloat16] [--work runs/pilot]
                                    [--out results/pilot]

Trains one model per row (its flagfile, seed 0, `--train_epochs`) with the train binary, then runs the
Table II white-box RP2 (flags/attacks/whitebox.flags: rectangles, 17 targets, λ 0.002, lr 0.1) for
`--epochs` in each precision with the attack binary, and reads the per-epoch history the attack records:
the percent of the 40 victims misclassified before each epoch's update, averaged over the 17 targets
(RP2's own printout), plus the final table ASR (the prediction moved from the clean one) after the last.

Writes <out>/rp2_convergence.json (every curve, each model's legit accuracy, the seconds of every
training and attack, the CPU, the commit) and <out>/rp2_convergence.png. The binaries resume a killed
run (training checkpoints; finished attacks are skipped), so the script can be run again to finish.
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import time

import numpy as np

from arguments import positive
from blurnet_tf import files
from blurnet_tf.evaluation.sticker_metrics import converged_at

ROOT = pathlib.Path(__file__).resolve().parent.parent
MARKS = (10, 30, 100, 300)  # epochs read off the curves
WITHIN = 2.0  # points: "converged" when the average is within this of its final value from here on


def run(args, log):
    started = time.time()
    proc = subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True)
    if proc.returncode:
        sys.exit(f"error: {' '.join(args[:1])} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    log.write(proc.stdout + proc.stderr)
    return time.time() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="baseline,conv_7,tv_1e-4,tik_hf")
    parser.add_argument("--train_epochs", type=positive, default=30)
    parser.add_argument("--epochs", type=positive, default=300)
    parser.add_argument("--precisions", default="float32,mixed_bfloat16")
    parser.add_argument("--work", default="runs/pilot")
    parser.add_argument("--out", default="results/pilot")
    a = parser.parse_args()
    rows, precisions = a.rows.split(","), a.precisions.split(",")
    if not set(precisions) <= {"float32", "mixed_bfloat16"}:
        parser.error(f"argument --precisions: expected float32 and / or mixed_bfloat16, got {a.precisions!r}")
    for row in rows:
        if not (ROOT / "flags" / "models" / f"{row}.flags").is_file():
            parser.error(f"argument --rows: no flags/models/{row}.flags")
    work, out = ROOT / a.work, ROOT / a.out
    out.mkdir(parents=True, exist_ok=True)
    result_file = out / "rp2_convergence.json"
    done = json.loads(result_file.read_text()) if result_file.is_file() else {}
    seconds = done.get("seconds", {})
    work.mkdir(parents=True, exist_ok=True)
    log = open(work / "binaries.log", "a")
    models = {}
    for row in rows:
        model = work / "models" / row
        if not (model / "model.keras").is_file():
            seconds[f"train/{row}"] = run(
                [
                    "blurnet_tf.cli.train",
                    f"--flagfile=flags/models/{row}.flags",
                    f"--epochs={a.train_epochs}",
                    "--seed=0",
                    f"--out={model}",
                ],
                log,
            )
            print(f"trained {row} in {seconds[f'train/{row}']:.0f} s", flush=True)
        metrics = json.loads((model / "metrics.json").read_text())
        models[row] = {"legit_accuracy": metrics["legit_accuracy"], "attacks": {}}
        for precision in precisions:
            attack = work / "rp2" / f"{row}-{precision}"
            if not (attack / "results.json").is_file():
                seconds[f"rp2/{row}/{precision}"] = run(
                    [
                        "blurnet_tf.cli.attack",
                        f"--model={model}",
                        "--flagfile=flags/attacks/whitebox.flags",
                        f"--epochs={a.epochs}",
                        f"--precision={precision}",
                        "--save_images=0",
                        f"--out={attack}",
                    ],
                    log,
                )
            record = json.loads((attack / "results.json").read_text())
            curves = np.array([h["misclassified"] for h in record["history"].values()])  # [targets, epochs]
            average = curves.mean(axis=0)
            asr = [r["asr"] for r in record["rows"]]
            models[row]["attacks"][precision] = {
                "targets": len(curves),
                "misclassified_avg": average.round(3).tolist(),
                "at": {str(e): round(float(average[e - 1]), 2) for e in MARKS if e <= len(average)},
                "converged_at": converged_at(average, WITHIN),
                "final_avg_asr": round(100 * float(np.mean(asr)), 2),
                "final_worst_asr": round(100 * float(np.max(asr)), 2),
            }
            print(
                f"{row} {precision}: legit {100 * models[row]['legit_accuracy']:.1f}%, misclassified "
                + ", ".join(f"{k}: {v:.1f}" for k, v in models[row]["attacks"][precision]["at"].items())
                + f"; within {WITHIN:g} pt of the end from epoch {models[row]['attacks'][precision]['converged_at']}"
                f"; final ASR avg {models[row]['attacks'][precision]['final_avg_asr']:.1f}",
                flush=True,
            )
    record = {
        "what": "white-box RP2 (Table II settings) convergence and bf16 fidelity, issue 41's pilot",
        "settings": {
            "rows": rows,
            "train_epochs": a.train_epochs,
            "training_seed": 0,
            "rp2_seed": 0,
            "epochs": a.epochs,
            "precisions": precisions,
            "within_points": WITHIN,
        },
        "models": models,
        "seconds": seconds,
        **files.provenance(ROOT),
    }
    files.write_json(result_file, record)
    draw(models, out / "rp2_convergence.png")
    print(f"wrote {result_file}")


def draw(models, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for (row, model), colour in zip(models.items(), plt.rcParams["axes.prop_cycle"].by_key()["color"]):
        for precision, attack in model["attacks"].items():
            curve = attack["misclassified_avg"]
            ax.plot(
                range(1, len(curve) + 1),
                curve,
                color=colour,
                linestyle="-" if precision == "float32" else ":",
                label=f"{row} ({100 * model['legit_accuracy']:.0f}%) {precision}",
            )
    for mark in MARKS[1:]:
        ax.axvline(mark, color="grey", linewidth=0.5)
    ax.set_xscale("log")
    ax.set_xlabel("RP2 epoch")
    ax.set_ylabel("victims misclassified, % (mean of 17 targets)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    os.replace(tmp, path)


if __name__ == "__main__":
    main()
