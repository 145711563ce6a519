"""Table III / V's adaptive RP2 through the attack-strength checks (the robustness profile's adaptive steps):
their flat records, the table with a checks column, and which (row, attack) pairs failed."""

import pathlib

from blurnet_tf.reports import flat_records
from blurnet_tf.reports.format import pct

ADAPTIVE = "robustness_adaptive_checks"


def adaptive_records(b, row, values, seed):
    """One adaptive step's checks (results.json values) as flat records on the RecordBuilder `b`."""
    found, where = values["checks"], dict(variant=values["attack"], images=values["checks"]["correct"])
    for check, held in found["checks"].items():
        b.add(ADAPTIVE, row, "check_held", None if held is None else float(held), seed, attack=check, **where)
    b.add(ADAPTIVE, row, "checks_passed", float(found["passed"]), seed, attack="all", **where)
    b.add(ADAPTIVE, row, "unrestricted_rp2_success", found.get("unrestricted_rp2_success"), seed, attack="rp2", **where)
    for epochs, value in zip(found.get("rp2_epochs", ()), found.get("rp2_success", ())):
        b.add(ADAPTIVE, row, f"rp2_success_{epochs}_epochs", value, seed, attack="rp2", **where)


def adaptive_table(records):
    """Table III / V's adaptive RP2 on its rows through the RP2 checks; the checks column counts the row's
    own gradient and PGD checks, re-run with it."""
    by = {}
    for r in (r for r in records if r.experiment == ADAPTIVE):
        by.setdefault((r.model, r.variant), {})[(r.attack, r.metric)] = r
    lines = [
        "| model | adaptive attack | victims right | whole-image RP2, λ 0: moved % | RP2 (λ 0.002) moved % at "
        "fewer / more epochs | checks passed | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for (row, attack), found in by.items():
        held = {c: r.value for (c, m), r in found.items() if m == "check_held" and r.value is not None}
        curve = sorted(((int(m.split("_")[2]), r.value) for (_, m), r in found.items() if m.startswith("rp2_success_")))
        whole, passed = found.get(("rp2", "unrestricted_rp2_success")), found.get(("all", "checks_passed"))
        lines.append(
            f"| {row} | {attack} | {passed.images if passed else '–'} | {pct(whole and whole.value)} | "
            + " → ".join(f"{pct(v)} ({e})" for e, v in curve)
            + " | "
            f"{'–' if passed is None else ('yes' if passed.value else '**no**')} "
            f"({sum(map(bool, held.values()))}/{len(held)}) | "
            f"{', '.join(c for c, v in held.items() if not v) or '–'} |"
        )
    return "\n".join(lines) if len(lines) > 2 else "_not run_"


def adaptive_passed(records):
    """{(row, attack): every check of that adaptive RP2 held}."""
    return {
        (r.model, r.variant): bool(r.value) for r in records if r.experiment == ADAPTIVE and r.metric == "checks_passed"
    }


def failed_adaptive(records):
    return sorted(pair for pair, ok in adaptive_passed(records).items() if not ok)


def adaptive_summary(records):
    passed, weak = adaptive_passed(records), failed_adaptive(records)
    return (
        ""
        if not passed
        else (
            f"; Table III / V's adaptive RP2 passed its checks on {len(passed) - len(weak)} of {len(passed)} "
            "(row, attack) pairs" + (f" (failed: {', '.join(f'{r} {a}' for r, a in weak)})" if weak else "")
        )
    )


def stored_adaptive_table(results_dir):
    return adaptive_table(flat_records.read(pathlib.Path(results_dir) / flat_records.JSON_FILE))
