"""Markdown table of trained models' legit accuracy beside the paper's Table II column.

    python -m blurnet_tf.reports.models_table runs/models
"""

import json
import pathlib
import sys

# Table II legit accuracy as printed in the paper (input / L1 blur rows are Table I models: none).
PAPER_LEGIT = {"baseline": 0.91, "gaussian_aug_0.1": 0.843, "gaussian_aug_0.2": 0.844, "gaussian_aug_0.3": 0.856,
               "adv_train": 0.779, "conv_3": 0.863, "conv_5": 0.863, "conv_7": 0.87, "tv_1e-4": 0.856,
               "tv_1e-5": 0.823, "tik_hf": 0.845, "tik_pseudo": 0.836}


def table(runs_dir):
    lines = ["| model (flagfile) | epochs | legit acc. (ours) | paper | diff | victims | wall time |",
             "|---|---|---|---|---|---|---|"]
    for metrics_file in sorted(pathlib.Path(runs_dir).glob("*/metrics.json")):
        m = json.loads(metrics_file.read_text())
        row = metrics_file.parent.name
        paper = PAPER_LEGIT.get(row)
        diff = f"{100 * (m['legit_accuracy'] - paper):+.1f} pt" if paper else "–"
        lines.append(f"| {row} | {m['flags']['epochs']} | {100 * m['legit_accuracy']:.1f}% | "
                     f"{f'{100 * paper:.1f}%' if paper else '–'} | {diff} | {m['victims_correct']}/40 | "
                     f"{m['wall_seconds'] / 60:.1f} min |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(table(sys.argv[1] if len(sys.argv) > 1 else "runs/models"))
