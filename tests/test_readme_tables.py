"""README.md's tables of measured numbers are the committed results (issue #17 item 7): every marked
table equals what reports.readme_sync renders from results/full, those tables are the committed
REPORT.md's and results.json's numbers, and a changed stored number makes the check fail."""

import difflib
import re
import json

import shutil

import pytest

from conftest import ROOT

STORED = ROOT / "results" / "full"
STORED_PD = ROOT / "results" / "full-pixel-deflection"  # the full profile's PD stage, re-run on its own
STORED_QUICK = ROOT / "results" / "quick"  # the quick profile's fresh-clone run: the README's excerpt
STORED_SEEDED = ROOT / "results" / "table2"  # every Table II row under three seeds
STORED_MNIST = ROOT / "results" / "mnist"  # the full profile's small-net Defend++ steps on the official split
STORED_TRADEOFF = ROOT / "results" / "tradeoff"  # every defence along its strength knob (its parts, merged)
README = ROOT / "README.md"
PD_TABLES = {"pixel-deflection-full", "pixel-deflection-adaptive-full"}
QUICK_TABLES = {"claims-quick", "table2-quick", "accuracy-curve-quick"}
SEEDED_TABLES = {"claims-table2", "seeds-table2", "accuracy-curve-table2", "accuracy-points-table2"}
MNIST_TABLES = {f"defendpp-{t}-mnist" for t in ("table2", "table1", "fig7", "checks", "weight", "reconstructions")}
FLAG_TABLES = {
    f"flags-{b}" for b in ("train", "attack", "mnist_attacks", "evaluate", "export", "benchmark", "reproduce")
}
TRADEOFF_TABLES = {
    "tradeoff-verdicts",
    "longtrain",
    "longtrain-summary",
    "robustness",
    "robustness-summary",
    "robustness-adaptive",
}  # "_not run yet_" until their results are committed
GENERATED = (
    {
        "claims-full",
        "table2-full",
        "table3-full",
        "table5-full",
        "models-full",
        "defendpp-table2",
        "defendpp-table1",
        "defendpp-reconstructions",
        "defendpp-lisa",
        "what-holds",
        "fair-verdicts",
        "summary",
    }
    | FLAG_TABLES
    | PD_TABLES
    | QUICK_TABLES
    | SEEDED_TABLES
    | MNIST_TABLES
    | TRADEOFF_TABLES
)


def _beside(folder):
    """The stored results read beside results/full (the PD stage's, the quick, table2 and mnist runs') copied
    into folder."""
    for stored in (
        STORED_PD,
        STORED_QUICK,
        STORED_SEEDED,
        STORED_MNIST,
        STORED_TRADEOFF,
        ROOT / "results" / "robustness",
        ROOT / "results" / "longtrain",
        ROOT / "results" / "fair",
        ROOT / "results" / "physical",
    ):
        if stored.is_dir():
            shutil.copytree(stored, folder / stored.name)


@pytest.fixture(scope="module")
def stored():
    if not (STORED / "tables.json").is_file():
        pytest.skip("results/full not committed")
    return json.loads((STORED / "tables.json").read_text())


@pytest.fixture(scope="module")
def rendered(stored):
    from blurnet_tf.reports import readme_sync

    return readme_sync.render(STORED)


def test_readme_tables_are_the_stored_results(rendered):
    from blurnet_tf.reports import readme_sync

    assert set(rendered) == GENERATED
    assert set(readme_sync.marked(readme_sync.read_documents())) == GENERATED
    assert readme_sync.differences(readme_sync.read_documents(), rendered) == [], (
        "README.md is stale: run python -m blurnet_tf.reports.readme_sync"
    )


def test_the_tables_are_the_committed_report_and_records(rendered):
    """The same text as REPORT.md's tables; the models table (not in the report) holds results.json's accuracies."""
    from blurnet_tf.reports import flat_records

    report, pd_report = (STORED / "REPORT.md").read_text(), (STORED_PD / "REPORT.md").read_text()
    quick_report, seeded_report = (STORED_QUICK / "REPORT.md").read_text(), (STORED_SEEDED / "REPORT.md").read_text()
    mnist_report = (STORED_MNIST / "REPORT.md").read_text()
    assert sorted(name for name, table in rendered.items() if table not in report) == sorted(
        [
            "models-full",
            "what-holds",
            "fair-verdicts",
            "summary",
            *FLAG_TABLES,
            *PD_TABLES,
            *QUICK_TABLES,
            *SEEDED_TABLES,
            *MNIST_TABLES,
            *TRADEOFF_TABLES,
        ]
    )
    for name, folder in (
        ("tradeoff-verdicts", "tradeoff"),
        ("longtrain", "longtrain"),
        ("robustness", "robustness"),
        ("robustness-adaptive", "robustness"),
    ):
        if (ROOT / "results" / folder / "REPORT.md").is_file():  # recomputed from its records by readme_sync
            assert rendered[name] in (ROOT / "results" / folder / "REPORT.md").read_text()
    assert all(rendered[name] in pd_report for name in PD_TABLES)
    assert all(rendered[name] in quick_report for name in QUICK_TABLES)
    assert all(rendered[name] in seeded_report for name in SEEDED_TABLES)
    assert all(rendered[name] in mnist_report for name in MNIST_TABLES)
    legit = {
        r.model: r.value
        for r in flat_records.read(STORED / flat_records.JSON_FILE)
        if (r.experiment, r.metric, r.seed) == ("models", "legit_accuracy", 0)
    }
    rows = rendered["models-full"].splitlines()[2:]
    assert [row.split(" | ")[2] for row in rows] == [f"{100 * legit[m]:.1f}%" for m in sorted(legit)]


def test_a_changed_stored_number_fails_the_check_and_the_rewrite_fixes_only_its_cells(stored, tmp_path, capsys):
    from blurnet_tf.reports import readme_sync

    changed = json.loads(json.dumps(stored))
    aggregate = changed["data"]["whitebox"]["baseline"]["aggregate"]["lambda=0.002"]
    assert f"{100 * aggregate['avg_asr']:.1f}" == "26.8"
    aggregate["avg_asr"] = 0.5
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "tables.json").write_text(json.dumps(changed))
    _beside(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text(README.read_text())
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    args = ["--readme", str(readme), "--results", str(tmp_path / "results")]

    assert readme_sync.main(["--check", *args]) == 1  # the command's exit status (`sys.exit(main())`)
    assert "defendpp-lisa, table2-full" in capsys.readouterr().err  # Table II's row and Defend++ on LISA's show it
    assert readme_sync.read_documents(readme) == readme_sync.read_documents()  # --check writes nothing

    assert readme_sync.main(args) == 0
    assert readme_sync.main(["--check", *args]) == 0
    diff = [
        line
        for line in difflib.unified_diff(
            readme_sync.read_documents().splitlines(), readme_sync.read_documents(readme).splitlines(), lineterm="", n=0
        )
        if line[:1] in "+-" and line[:3] not in ("+++", "---")
    ]
    assert sorted(line[:13] for line in diff) == ["+| baseline |"] * 2 + ["-| baseline |"] * 2  # two rows, nothing else
    assert sum("50.0 / 49.2 / +0.8" in line for line in diff) == 1  # Table II: ours / paper / Δ
    assert sum(line.startswith("+| baseline | 98.6 | 50.0 | 47.5 |") for line in diff) == 1  # Defend++ on LISA


def test_a_missing_or_unknown_marker_is_an_error(rendered):
    from blurnet_tf.reports import readme_sync

    text = (
        readme_sync.read_documents()
        .replace("<!-- results:table5-full -->", "")
        .replace("<!-- /results:table5-full -->", "")
    )
    assert readme_sync.differences(text, rendered) == ["table5-full"]
    with pytest.raises(ValueError, match="table5-full"):
        readme_sync.sync(text, rendered)
    text += "\n<!-- results:table9 -->\n| x |\n<!-- /results:table9 -->\n"
    assert "table9 (unknown)" in readme_sync.differences(text, rendered)


def test_a_tables_json_of_the_current_schema_renders_the_same(stored, rendered, tmp_path):
    """The next full run writes tables.json with named aggregate lists and claim objects: same tables."""
    from blurnet_tf.reports import readme_sync, report_writer

    data = dict(stored["data"], seeds={"seeds": [0], "rows": []})
    current = report_writer.tables_json(
        data, {}, [tuple(c) for c in stored["claims"]], [], dict(stored["metadata"], interval_misses=[])
    )
    assert isinstance(current["data"]["whitebox"]["baseline"]["aggregate"], list)
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "tables.json").write_text(json.dumps(current))
    _beside(tmp_path)
    assert readme_sync.render(tmp_path / "full") == rendered


def _anchor(heading):
    """GitHub's anchor of a Markdown heading."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def test_the_front_page_is_short_and_every_link_in_it_and_docs_resolves():
    """README.md stays a front page (at most 200 lines); every relative link of README.md and docs/
    names a file that exists and, with #anchor, a heading of that file."""
    from blurnet_tf.reports import readme_sync

    assert len(README.read_text().splitlines()) <= 200
    pages = readme_sync.documents()
    assert len(pages) > 5 and all(page.is_file() for page in pages)
    links = 0
    for page in pages:
        for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
            if re.match(r"[a-z]+:", target):
                continue
            path, _, anchor = target.partition("#")
            linked = (page.parent / path).resolve() if path else page
            assert linked.exists(), f"{page.name}: {target}"
            if anchor:
                headings = re.findall(r"(?m)^#+ (.+)$", linked.read_text())
                assert anchor in {_anchor(h) for h in headings}, f"{page.name}: {target}"
            links += 1
    assert links >= 20


def test_what_holds_gives_each_claim_one_verdict_from_the_set_with_the_most_evidence():
    from blurnet_tf.reports import what_holds

    rows = [line.split(" | ") for line in what_holds.table(ROOT / "results").splitlines()[2:]]
    claims = [what_holds.key(r[1]) for r in rows]
    assert len(claims) == len(set(claims)) and len(claims) >= 15
    assert {r[2] for r in rows} <= {"**held**", "**not held**", "**inconclusive**", "**untested**"}
    by_claim = what_holds.collect(ROOT / "results")
    for claim, judged in by_claim.items():  # the first is the best: most seeds, then budget, then newest
        assert [j[0] for j in judged] == sorted((j[0] for j in judged), reverse=True)
    # BlurNet's Table II claims come from the three-seed set, Defend++'s from the newer full-budget MNIST set.
    assert by_claim["PGD"][0][1] == "table2" and by_claim["Defend++ keeps clean accuracy"][0][1] == "mnist"
    # The central claim: the pre-registered fair test outranks the snapshot trade-off at an equal seed count.
    assert by_claim["At equal legit accuracy"][0][1] == "fair"


@pytest.mark.parametrize("tables", ["{}", '{"data": {"whitebox": []}}', "[]"])
def test_a_partial_tables_json_is_one_line_naming_the_results(tmp_path, capsys, tables):
    from blurnet_tf.reports import readme_sync

    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "tables.json").write_text(tables)
    assert readme_sync.main(["--check", "--results", str(tmp_path / "results")]) == 1
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and f"{tmp_path / 'results'}: a results file here is partial or of another shape" in lines[0]
