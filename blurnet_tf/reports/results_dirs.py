"""Who owns a results directory: the files a report writes replace only a report's, and --report_only
never replaces a report with an emptier one. Checked before any work (cli/reproduce)."""

from __future__ import annotations

import json
import os
import pathlib
from collections.abc import Sequence
from typing import Any

from blurnet_tf import rundir
from blurnet_tf.errors import DataError
from blurnet_tf.reports import flat_records


def keep_a_fuller_report(
    results: str | os.PathLike[str], unfinished: Sequence[str], planned: int, work_dir: Any, seeds: Sequence[int]
) -> None:
    """For --report_only: refuses (DataError) to replace the report in `results` with one made from fewer
    finished steps (`unfinished`: the names of the `planned` steps not finished), or of fewer seeds (a fresh
    clone's empty runs/ would otherwise wipe the committed results; --seeds=0 over a two-seed report would
    halve it)."""
    results = pathlib.Path(results)
    if not (results / rundir.RESULTS_FILE).exists():
        return
    if unfinished:
        raise DataError(
            results,
            f"holds a report; --report_only would replace it with one lacking {len(unfinished)} of "
            f"{planned} steps not finished in {work_dir} (e.g. {unfinished[0]}): run them first "
            "(without --report_only), or choose another --results_dir",
        )
    try:
        stored = {r.seed for r in flat_records.read(results / rundir.RESULTS_FILE)}
    except (DataError, OSError, ValueError, KeyError, TypeError):  # not a report of ours: nothing to compare
        stored = set()
    if stored - set(seeds):
        raise DataError(
            results,
            f"holds a report of seeds {sorted(stored)}; --report_only with seeds {list(seeds)} "
            "would replace it with less: pass its seeds, or choose another --results_dir",
        )


def claim_results(results_dir: str | os.PathLike[str], profile_name: str, writes_top_report: bool) -> None:
    """Before any work: the files a report writes in `results_dir` are a report's, or new. A <profile>/ folder
    holding files but no report record (results.json with its records), or a top-level REPORT.md without a
    report's provenance line, is the user's: refused (DataError), so nothing of theirs is replaced."""
    out = pathlib.Path(results_dir) / profile_name
    if out.is_dir() and any(out.iterdir()):
        try:
            record = json.loads((out / rundir.RESULTS_FILE).read_text())
        except (OSError, ValueError):
            record = None
        if not (isinstance(record, dict) and isinstance(record.get("records"), list)):
            raise DataError(
                out,
                f"holds files a report did not write (no {rundir.RESULTS_FILE} of a reproduction); "
                "choose another --results_dir",
            )
    top = pathlib.Path(results_dir) / "REPORT.md"
    if writes_top_report and (top.is_dir() or top.exists() and not _is_report_text(top)):
        raise DataError(top, "is not a report a reproduction wrote (no provenance line); choose another --results_dir")


def _is_report_text(path: pathlib.Path) -> bool:
    try:
        return any(
            line.startswith("- commit `") and "; generated " in line
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
        )
    except OSError:
        return False
