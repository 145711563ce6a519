"""Markdown table of trained models' legit accuracy beside the paper's Table II column.

    python -m blurnet_tf.reports.models_table runs/<profile>/models   (default: runs/quick/models)

A reproduction writes its models to runs/<profile>/models (rundir.Layout under --work_dir).
"""

import pathlib
import sys

from blurnet_tf import files, rundir
from blurnet_tf.paper import TABLE2


def _minutes(metrics, run_dir):
    """Training time: summed over resumed runs where recorded; else the whole pipeline step when
    it trained from scratch; '–' for runs resumed before times were recorded."""
    training = metrics.training
    if training.get("train_seconds_total"):
        return f"{training['train_seconds_total'] / 60:.1f} min"
    step = files.read_json(run_dir / "step.json")
    if training.get("resumed_from_epoch") == 0:
        seconds = step["seconds"] if step else metrics.wall_seconds
        return f"{seconds / 60:.1f} min"
    return "–"


def table(runs_dir):
    lines = [
        "| model (flagfile) | epochs | legit acc. (ours) | paper | diff | victims | training time |",
        "|---|---|---|---|---|---|---|",
    ]
    for metrics_file in sorted(pathlib.Path(runs_dir).glob(f"*/{rundir.METRICS_FILE}")):
        m = rundir.read_model(metrics_file.parent)
        row = metrics_file.parent.name
        paper = TABLE2.get(row, {}).get("legit")
        diff = f"{100 * (m.legit_accuracy - paper):+.1f} pt" if paper else "–"
        lines.append(
            f"| {row} | {m.epochs} | {100 * m.legit_accuracy:.1f}% | "
            f"{f'{100 * paper:.1f}%' if paper else '–'} | {diff} | {m.victims_correct}/40 | "
            f"{_minutes(m, metrics_file.parent)} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1] if len(sys.argv) > 1 else "runs/quick/models"))
