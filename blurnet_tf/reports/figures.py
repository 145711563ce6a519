"""The paper's figures as PNGs (matplotlib, no display needed)."""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from blurnet_tf import files  # noqa: E402
from blurnet_tf.evaluation.spectra import log_spectrum  # noqa: E402


def _save(fig, path, vector=False):
    """PNG (and, for the plots read at paper size, a PDF beside it), each written atomically."""
    try:
        for target in (path, path.with_suffix(".pdf")) if vector else (path,):
            buffer = (
                io.BytesIO()
            )  # rendered in memory: a full disk fails in files.write_bytes, in one line, no temp left
            fig.savefig(buffer, format=target.suffix[1:], dpi=110, bbox_inches="tight")
            files.write_bytes(target, buffer.getvalue())
    finally:
        plt.close(fig)


def forest(rows, title, xlabel, path):
    """One line per row: our mean and 95% interval, the paper's value as a marker.
    rows: [(label, {mean, lo, hi, seeds}, paper value or None)]."""
    fig, ax = plt.subplots(figsize=(6, 0.38 * len(rows) + 1.2))
    for i, (label, r, ref) in enumerate(rows):
        y = len(rows) - 1 - i
        ax.errorbar(
            100 * r["mean"],
            y,
            xerr=[[100 * (r["mean"] - r["lo"])], [100 * (r["hi"] - r["mean"])]],
            fmt="o",
            color="tab:blue",
            capsize=3,
            label="ours: mean, 95% interval" if i == 0 else None,
        )
        if ref is not None:
            ax.plot(100 * ref, y, "kD", markersize=5, label="paper" if i == 0 else None)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{label} (n={r['seeds']})" for label, r, _ in reversed(rows)], fontsize=8)
    ax.set_xlabel(xlabel)
    ax.set_title(title, fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if labels:
        ax.legend(fontsize=8, loc="best")
    _save(fig, path, vector=True)


def image_spectra(clean, stickered, path):
    """Fig. 1: log-shifted, normalised FFT magnitude of each RGB channel ([3, H, W] inputs)."""
    fig, axes = plt.subplots(2, 4, figsize=(9, 4.6))
    for r, (name, img) in enumerate((("clean", clean), ("stickered", stickered))):
        axes[r, 0].imshow(np.clip(np.moveaxis(img, 0, -1), 0, 1))
        axes[r, 0].set_title(name, fontsize=9)
        for c, spec in enumerate(log_spectrum(img)):
            axes[r, c + 1].imshow(spec, cmap="viridis", vmin=0, vmax=1)
            axes[r, c + 1].set_title(f"{name}: {'RGB'[c]} spectrum", fontsize=9)
    for ax in axes.flat:
        ax.axis("off")
    fig.suptitle("Fig. 1: FFT magnitude (log, shifted, normalised) of a clean and a stickered stop sign", fontsize=10)
    _save(fig, path)


def feature_map_spectra(clean, adversarial, difference, blurred_difference, channels, layer, path):
    """Figs. 2 / 4: per feature map, spectra of clean, adversarial, their difference and the
    difference after a 3x3 box blur of both maps ([K, H, W] inputs)."""
    cols = (
        ("clean", clean),
        ("adversarial", adversarial),
        ("difference", difference),
        ("blurred difference", blurred_difference),
    )
    fig, axes = plt.subplots(len(channels), 4, figsize=(8, 2 * len(channels)), squeeze=False)
    for r, ch in enumerate(channels):
        for c, (name, maps) in enumerate(cols):
            axes[r, c].imshow(log_spectrum(maps[r]), cmap="viridis", vmin=0, vmax=1)
            axes[r, c].set_title(f"map {ch}: {name}", fontsize=8)
            axes[r, c].axis("off")
    fig.suptitle(f"FFT spectra of {layer} feature maps (log, shifted, normalised)", fontsize=10)
    _save(fig, path)


def asr_vs_dct(dims, avg, worst, paper_points, path):
    """Fig. 3: low-frequency RP2 success against the DCT mask size on the 7x7 conv model."""
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.plot(dims, 100 * np.asarray(worst), "o-", label="worst over targets (ours)")
    ax.plot(dims, 100 * np.asarray(avg), "s--", label="average over targets (ours)")
    if paper_points:
        ax.plot(
            list(paper_points), [100 * v for v in paper_points.values()], "k*", markersize=10, label="paper (worst)"
        )
    ax.set_xlabel("DCT mask size M_dim")
    ax.set_ylabel("attack success rate (%)")
    ax.set_title("Fig. 3: low-frequency RP2 on 7x7 conv", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def accuracy_vs_eps(series, path):
    """Defend++ Fig. 7: accuracy under FGSM against its L∞ ε, one curve per model.
    series: {label: (eps list, accuracy list)}."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for (label, (eps, acc)), marker in zip(series.items(), "os^vDP*X<>"):
        ax.plot(eps, 100 * np.asarray(acc), marker=marker, label=label)
    ax.set_xlabel("FGSM L∞ ε")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("Defend++ Fig. 7: accuracy against the FGSM budget (MNIST)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path, vector=True)


def asr_vs_accuracy(series, path):
    """Average white-box ASR against legit accuracy along training, one curve per row, the paper's
    (accuracy, ASR) as a star in the row's colour. series: {row: ([legit], [asr], (legit, asr) or None)}."""
    fig, ax = plt.subplots(figsize=(6, 4.2))
    for (row, (legit, asr, ref)), marker in zip(series.items(), "os^vDP*X<>hp8"):
        (line,) = ax.plot(100 * np.asarray(legit), 100 * np.asarray(asr), marker=marker, label=row, alpha=0.8)
        if ref:
            ax.plot(100 * ref[0], 100 * ref[1], "*", color=line.get_color(), markersize=12, markeredgecolor="k")
    ax.plot([], [], "*", color="grey", markeredgecolor="k", markersize=12, label="paper (star, row's colour)")
    ax.set_xlabel("legit accuracy (%)")
    ax.set_ylabel("white-box RP2 average ASR (%), λ 0.002")
    ax.set_title("Robustness against accuracy along training", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    _save(fig, path, vector=True)


def frontiers(panels, path):
    """The accuracy-robustness frontiers: per panel (average, worst ASR), one line per family (mean over
    seeds) with its 95% band, the models as small dots and the paper's (accuracy, ASR) as stars in the
    family's colour. panels: {ylabel: {family: {"grid", "mean", "lo", "hi", "points": [(acc, asr)],
    "paper": [(acc, asr)]}}}."""
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.4), squeeze=False)
    for ax, (ylabel, families) in zip(axes[0], panels.items()):
        for family, c in families.items():
            (line,) = ax.plot(
                100 * np.asarray(c["grid"]),
                100 * np.asarray(c["mean"]),
                label=family,
                color="k" if family == "baseline" else None,
            )
            ax.fill_between(
                100 * np.asarray(c["grid"]),
                100 * np.asarray(c["lo"]),
                100 * np.asarray(c["hi"]),
                color=line.get_color(),
                alpha=0.15,
            )
            if c["points"]:
                ax.plot(*(100 * np.asarray(c["points"]).T), ".", color=line.get_color(), alpha=0.5, markersize=4)
            for acc, asr in c["paper"]:
                ax.plot(100 * acc, 100 * asr, "*", color=line.get_color(), markersize=12, markeredgecolor="k")
        ax.plot([], [], "*", color="grey", markeredgecolor="k", markersize=12, label="paper (row's colour)")
        ax.set_xlabel("legit accuracy (%)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(
        "White-box RP2 (λ 0.002, 17 targets) against legit accuracy: each defence along its strength, the "
        "baseline along training; lines: mean over the seeds reaching each accuracy (at least 2), bands: 95%; "
        "dots: models",
        fontsize=9,
    )
    _save(fig, path, vector=True)


def asr_vs_l2(series, title, path):
    """Figs. 5 / 6: ASR against L2 dissimilarity, one point per target, one marker per defence
    (as the paper: lower and to the right is better). series: {label: [(l2, asr), ...]}."""
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for (label, points), marker in zip(series.items(), "os^vDP*X<>"):
        if points:
            l2, asr = np.array(points).T
            ax.scatter(l2, asr * 100, marker=marker, label=label, alpha=0.75)
    ax.set_xlabel("L2 dissimilarity")
    ax.set_ylabel("attack success rate (%)")
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    _save(fig, path)


def reconstructions(clean, rec_clean, adversarial, rec_adversarial, ratio, name, path):
    """Defend++ Figs. 6 / 8: clean, its reconstruction, FGSM image, its reconstruction (rows), and
    the histogram of R = D_rc / D_ra over every attacked image."""
    n = len(clean)
    fig = plt.figure(figsize=(1.2 * n + 3.6, 5))
    grid = fig.add_gridspec(4, n + 4)
    rows = (("clean", clean), ("reconstructed", rec_clean), ("FGSM", adversarial), ("reconstructed", rec_adversarial))
    for r, (label, images) in enumerate(rows):
        for c in range(n):
            ax = fig.add_subplot(grid[r, c])
            img = np.clip(images[c], 0, 1)
            ax.imshow(
                img[..., 0] if img.shape[-1] == 1 else img, cmap="gray" if img.shape[-1] == 1 else None, vmin=0, vmax=1
            )
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(label, fontsize=8)
    ax = fig.add_subplot(grid[:, n + 1 :])
    ax.hist(ratio, bins=40, range=(0, max(1.5, float(ratio.max()) * 1.05)), color="tab:blue")
    ax.axvline(1.0, color="k", linestyle="--", linewidth=1)
    ax.set_xlabel("R = D_rc / D_ra")
    ax.set_ylabel("images")
    ax.set_title(f"{100 * np.mean(ratio < 1):.1f}% of images have R < 1", fontsize=9)
    fig.suptitle(f"Defend++ auto-encoder ({name}): reconstructions of clean and FGSM images, and R", fontsize=10)
    _save(fig, path)


def fair_figure(models, comparator, path):
    """The fair verdict's evidence: average ASR (right victims) against legit accuracy, one panel per family
    with the comparator beside it; small marks per seed, large ones the mean at each level (±1 seed sd).
    models: reports.fair_verdict.ModelPoint."""
    families = sorted({m.family for m in models} - {comparator})
    fig, axes = plt.subplots(1, max(1, len(families)), figsize=(4.2 * max(1, len(families)), 3.6), squeeze=False)
    for ax, family in zip(axes[0], families or [comparator]):
        for name, colour in ((comparator, "tab:grey"), (family, "tab:blue")):
            own = [m for m in models if m.family == name and m.avg_asr is not None]
            ax.scatter([m.legit_accuracy for m in own], [m.avg_asr for m in own], s=8, color=colour, alpha=0.4)
            for level in sorted({m.level for m in own}):
                at = [m for m in own if m.level == level]
                acc, asr = [m.legit_accuracy for m in at], [m.avg_asr for m in at]
                ax.errorbar(
                    np.mean(acc),
                    np.mean(asr),
                    xerr=np.std(acc, ddof=1) if len(at) > 1 else 0,
                    yerr=np.std(asr, ddof=1) if len(at) > 1 else 0,
                    fmt="o",
                    color=colour,
                    label=name if level == min(m.level for m in own) else None,
                )
        ax.set_title(family)
        ax.set_xlabel("legit accuracy, %")
        ax.set_ylabel("average ASR, % of the right victims")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    _save(fig, path, vector=True)


def physical_figure(points, path):
    """RP2 stickers on the stationary grid: success against distance (head-on) and against angle (at 1x), one line
    per row, EOT solid and digital dashed, the mean over seeds. points: reports.physical_verdict.StickerPoint."""
    import re

    rows = list(dict.fromkeys(p.row for p in points))
    colours = dict(zip(rows, plt.rcParams["axes.prop_cycle"].by_key()["color"] * 3))
    fig, (by_distance, by_angle) = plt.subplots(1, 2, figsize=(10, 3.8), sharey=True)
    for row in rows:
        for sticker, style in (("eot", "-"), ("digital", "--")):
            own = [p for p in points if p.row == row and p.sticker == sticker]
            if not own:
                continue
            names = own[0].by_condition.keys()
            parsed = {n: re.match(r"([\d.]+)x distance, ([\d.]+)°$", n) for n in names}
            head_on = sorted((float(m[1]), n) for n, m in parsed.items() if m and m[2] == "0")
            near = sorted((float(m[2]), n) for n, m in parsed.items() if m and m[1] == "1")
            for ax, picks in ((by_distance, head_on), (by_angle, near)):
                ax.plot(
                    [x for x, _ in picks],
                    [np.mean([p.by_condition[n] for p in own]) for _, n in picks],
                    style,
                    marker="o",
                    color=colours[row],
                    label=f"{row} ({sticker})",
                )
    by_distance.set_xlabel("distance (x the photograph's), head-on")
    by_angle.set_xlabel("yaw, degrees, at the photograph's distance")
    by_distance.set_ylabel("victims moved, % of the right ones")
    by_angle.legend(fontsize=7, ncol=2)
    _save(fig, path, vector=True)
