"""The tables of measured numbers in README.md and docs/*.md, generated from the committed results.

Each table sits between marker comments in README.md or a page of docs/ (each name once),

    <!-- results:table2-full -->
    | model | ... |
    <!-- /results:table2-full -->

and is rendered from results/full/tables.json by the same functions that write REPORT.md (whose
records results.json holds), so README, report and stored results cannot drift apart:

    python -m blurnet_tf.reports.readme_sync           # rewrite the marked tables in README.md and docs/
    python -m blurnet_tf.reports.readme_sync --check   # exit 1, naming the tables that differ

A maintenance script of this repository (like flat_records' and models_table's mains), so plain
argparse, not an absl binary of cli/: it has no experiment flags and reads the checkout's files.
"""

import argparse
import pathlib
import re
import subprocess
import sys

from blurnet_tf import files, paper
from blurnet_tf.reports import (
    accuracy_curve,
    blurnet_tables,
    defendpp_section,
    fair_report,
    flag_tables,
    flat_records,
    longtrain_report,
    robustness_adaptive,
    robustness_report,
    seed_statistics,
    tradeoff_analysis,
    what_holds,
)
from blurnet_tf.reports.format import pct

ROOT = pathlib.Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
RESULTS = ROOT / "results" / "full"
# The full profile's Pixel Deflection stage re-run with all six attacks (the rest of the full run is older).
PD_RESULTS = "full-pixel-deflection"
PD_CAPTIONS = {"pixel-deflection-full": "", "pixel-deflection-adaptive-full": "Accuracy under the real"}
QUICK_RESULTS = "quick"  # the quick profile's fresh-clone run: the README's excerpt
SEEDED_RESULTS = "table2"  # every Table II row under three seeds (the table2 profile)
LONGTRAIN_RESULTS = "longtrain"  # the baseline, TV and Tik_hf trained 300 epochs
ROBUSTNESS_RESULTS = "robustness"  # every model through benchmark(): PGD-10, AutoAttack, strength checks
FAIR_RESULTS = "fair"  # the central claim at matched accuracy, fully trained comparators (issue 41)
TRADEOFF_RESULTS = "tradeoff"  # every defence along its strength knob against the baseline along training
MNIST_RESULTS = "mnist"  # the full profile's small-net Defend++ steps with the reconstruction-weight curve
MNIST_CAPTIONS = (
    "defendpp-table2",
    "defendpp-table1",
    "defendpp-fig7",
    "defendpp-checks",
    "defendpp-weight",
    "defendpp-reconstructions",
)
TABLES_FILE = "tables.json"
DEFENDPP_CAPTIONS = {
    "defendpp-table2-resnet18": "**Defend++ Table 2 as the paper ran it**",
    "defendpp-table2": "**Defend++ Table 2 (comparison",
    "defendpp-table1": "**Defend++ Table 1 ",
    "defendpp-fig7": "**Accuracy against the FGSM budget",
    "defendpp-checks": "**Attack-strength checks**",
    "defendpp-transfer": "**Transfer (Tables 7-8):**",
    "defendpp-weight": "**Reconstruction weight",
    "defendpp-reconstructions": "**Reconstructions (Fig. 8):**",
    "defendpp-lisa": "**Defend++ on LISA**",
}
_MARKED = re.compile(r"<!-- results:(?P<name>[\w.-]+) -->\n(?P<body>.*?)<!-- /results:(?P=name) -->", re.S)


def _data(tables):
    """tables.json's "data" as the report functions take it: aggregates keyed "lambda=<l>" (a
    schema-1 tables.json stores them as named lists; the full run's older one as keys)."""

    def back(value, key=None):
        if key == "aggregate" and isinstance(value, list):
            return {flat_records.SWEEP_KEY if a["lambda"] is None else f"lambda={a['lambda']:g}": a for a in value}
        if isinstance(value, dict):
            return {k: back(v, k) for k, v in value.items()}
        return [back(v) for v in value] if isinstance(value, list) else value

    return back(tables["data"])


def _claims(tables):
    rows = [(c["claim"], c["verdict"], c["evidence"]) if isinstance(c, dict) else c for c in tables["claims"]]
    return "\n".join(
        ["| claim | verdict | evidence |", "|---|---|---|"] + [f"| {c} | **{v}** | {e} |" for c, v, e in rows]
    )


def _models(data):
    """Legit accuracy of every trained LISA model (alphabetical, like reports.models_table)."""
    lines = ["| model (flagfile) | epochs | legit acc. (ours) | paper | diff | victims |", "|---|---|---|---|---|---|"]
    for row, m in sorted(data["models"].items()):
        if not m:
            continue
        acc, ref = m["legit_accuracy"], paper.TABLE2.get(row, {}).get("legit")
        theirs, diff = (f"{pct(ref)}%", f"{100 * (acc - ref):+.1f} pt") if ref else ("–", "–")
        lines.append(f"| {row} | {m['epochs']} | {pct(acc)}% | {theirs} | {diff} | {m['victims_correct']}/40 |")
    return "\n".join(lines)


def render(results_dir=RESULTS):
    """{marker name: Markdown table} of every README table backed by results_dir's tables.json."""
    tables = files.read_json(pathlib.Path(results_dir) / TABLES_FILE, missing_ok=False)
    data, ignored = _data(tables), []  # the report collects the >10-point disagreements; not needed here
    first = next(w for w in data["whitebox"].values() if w)["aggregate"]
    lambdas = [k.split("=", 1)[1] for k in first if k.startswith("lambda=")]
    out = {
        "claims-full": _claims(tables),
        "table2-full": blurnet_tables.table2(data, ignored, lambdas),
        "table3-full": blurnet_tables.table3(data, ignored),
        "table5-full": blurnet_tables.table5(data, ignored),
        "models-full": _models(data),
    }
    section = defendpp_section.section(data, ignored)  # the report's Defend++ tables, found by their captions
    for name, caption in DEFENDPP_CAPTIONS.items():
        if caption in section:
            out[name] = _table_after(section, caption)
    quick_tables = pathlib.Path(results_dir).parent / QUICK_RESULTS / TABLES_FILE
    if quick_tables.is_file():
        quick = files.read_json(quick_tables, missing_ok=False)
        data = _data(quick)
        out.update(
            {"claims-quick": _claims(quick), "table2-quick": blurnet_tables.table2(data, [], [f"{paper.RP2_LAMBDA:g}"])}
        )
        if data.get("accuracy_curve"):
            out["accuracy-curve-quick"] = _table_after(
                accuracy_curve.section(data["accuracy_curve"]), "**Table II at the paper's legit accuracy:**"
            )
    seeded_tables = pathlib.Path(results_dir).parent / SEEDED_RESULTS / TABLES_FILE
    if seeded_tables.is_file():
        seeded = files.read_json(seeded_tables, missing_ok=False)
        measured = [c for c in seeded["claims"] if c["verdict"] != "not measured"]  # it runs BlurNet's rows only
        out.update(
            {
                "claims-table2": _claims({"claims": measured}),
                "seeds-table2": _table_after(
                    seed_statistics.intervals_table(seeded["intervals"], seeded["seeds"]["seeds"], []), ""
                ),
            }
        )
        curve = accuracy_curve.section(_data(seeded).get("accuracy_curve"))
        if curve:
            out["accuracy-curve-table2"] = _table_after(curve, "**Table II at the paper's legit accuracy:**")
            out["accuracy-points-table2"] = _table_after(curve, "**Robustness along training**")
    mnist_tables = pathlib.Path(results_dir).parent / MNIST_RESULTS / TABLES_FILE
    if mnist_tables.is_file():
        mnist_section = defendpp_section.section(_data(files.read_json(mnist_tables, missing_ok=False)), [])
        out.update({f"{name}-mnist": _table_after(mnist_section, DEFENDPP_CAPTIONS[name]) for name in MNIST_CAPTIONS})
    root = pathlib.Path(results_dir).parent
    out["what-holds"] = what_holds.table(root, full=results_dir)
    out["summary"] = what_holds.summary(root, full=results_dir)
    out.update(flag_tables.tables())  # docs/binaries.md: each binary's flags, from their definitions
    tradeoff, longtrain = root / TRADEOFF_RESULTS, root / LONGTRAIN_RESULTS  # recomputed from their records
    out["tradeoff-verdicts"] = (
        tradeoff_analysis.verdict_table(tradeoff) if (tradeoff / flat_records.JSON_FILE).is_file() else "_not run yet_"
    )
    fair = root / FAIR_RESULTS
    out["fair-verdicts"] = (
        fair_report.stored_verdict_table(fair) if (fair / flat_records.JSON_FILE).is_file() else "_not run yet_"
    )
    stored_longtrain = (longtrain / flat_records.JSON_FILE).is_file()
    out["longtrain"] = longtrain_report.stored_table(longtrain) if stored_longtrain else "_not run yet_"
    out["longtrain-summary"] = longtrain_report.summary(longtrain) if stored_longtrain else "_not run yet_"
    robustness = root / ROBUSTNESS_RESULTS
    stored_robustness = (robustness / flat_records.JSON_FILE).is_file()
    out["robustness"] = robustness_report.stored_table(robustness) if stored_robustness else "_not run yet_"
    out["robustness-adaptive"] = (
        robustness_adaptive.stored_adaptive_table(robustness) if stored_robustness else "_not run yet_"
    )
    out["robustness-summary"] = robustness_report.summary(robustness) if stored_robustness else "_not run yet_"
    pd_tables = pathlib.Path(results_dir).parent / PD_RESULTS / TABLES_FILE
    if pd_tables.is_file():
        pd_section = blurnet_tables.pixel_deflection_tables(_data(files.read_json(pd_tables, missing_ok=False)))
        out.update({name: _table_after(pd_section, caption) for name, caption in PD_CAPTIONS.items()})
    return out


def _table_after(markdown, caption):
    """The first Markdown table after caption in markdown."""
    lines = (markdown.split(caption, 1)[1] if caption else markdown).splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return "\n".join(lines[start:end])


def documents(readme=README):
    """README.md and the Markdown pages of docs/ beside it: the files whose tables are generated."""
    readme = pathlib.Path(readme)
    return [readme, *sorted((readme.parent / "docs").glob("*.md"))]


def read_documents(readme=README):
    """The documents' text, one after another (a table's name may be marked in one of them only)."""
    return "\n".join(path.read_text() for path in documents(readme))


def marked(text):
    """{name: table} of README text's marked regions; a name marked twice is an error."""
    found = {}
    for m in _MARKED.finditer(text):
        if m["name"] in found:
            raise ValueError(f"README marks the table {m['name']!r} twice")
        found[m["name"]] = m["body"].strip("\n")
    return found


def differences(text, tables):
    """Names of the tables whose marked region in text is not the rendered table, or that are not
    marked; and marked names that have no table ("unknown")."""
    found = marked(text)
    return sorted(
        [n for n, t in tables.items() if found.get(n) != t] + [f"{n} (unknown)" for n in found if n not in tables]
    )


def sync(text, tables):
    """text with every marked region replaced by its rendered table; every table must be marked."""
    _check_markers(marked(text), tables)
    return _rewrite(text, tables)


def sync_documents(readme, tables):
    """{path: new text} of the documents: each marked region replaced by its rendered table, every
    table marked in exactly one of them."""
    _check_markers(marked(read_documents(readme)), tables)
    return {path: _rewrite(path.read_text(), tables) for path in documents(readme)}


def _check_markers(found, tables):
    missing, unknown = sorted(set(tables) - set(found)), sorted(set(found) - set(tables))
    if missing or unknown:
        raise ValueError(f"README markers: missing for {missing}, no table for {unknown}")


def _rewrite(text, tables):
    # A blank line before the closing marker ends the Markdown table.
    return _MARKED.sub(
        lambda m: f"<!-- results:{m['name']} -->\n{tables[m['name']]}\n\n<!-- /results:{m['name']} -->", text
    )


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m blurnet_tf.reports.readme_sync", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 naming the tables that differ")
    parser.add_argument("--readme", type=pathlib.Path, default=README, help="README.md (its docs/ pages beside it too)")
    parser.add_argument("--results", type=pathlib.Path, default=RESULTS, help="results directory (its tables.json)")
    args = parser.parse_args(argv)
    try:  # a missing file, a bad tables.json or a missing marker: one line, exit 1
        try:
            tables = render(args.results)
        except (KeyError, TypeError, AttributeError, IndexError, StopIteration) as exc:  # JSON, but not all of it
            raise ValueError(
                f"{args.results}: a results file here is partial or of another shape ({type(exc).__name__}: "
                f"{exc}); write it again with python -m blurnet_tf.cli.reproduce"
            ) from None
        stale = differences(read_documents(args.readme), tables)
        new = {} if args.check else sync_documents(args.readme, tables)
    except (OSError, ValueError, subprocess.SubprocessError) as exc:  # also a binary that cannot list its flags
        print(f"{args.readme}: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if stale:
            print(
                f"{args.readme}: tables differing from {args.results / TABLES_FILE}: {', '.join(stale)}\n"
                "(python -m blurnet_tf.reports.readme_sync rewrites them)",
                file=sys.stderr,
            )
        return 1 if stale else 0
    for path, text in new.items():
        if text != path.read_text():
            files.write_text(path, text)
    print(f"{args.readme}: {len(tables)} tables, rewritten: {', '.join(stale) or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
