"""The reproduction end to end: every stage on the real data at smoke budgets, two steps at a time,
SIGKILLed after 13 steps and resumed (`smoke_run` in conftest.py: one run, started in the
background with the session's first test and shared by the tests here)."""

import json
import re

import pytest

from blurnet_tf.reports import flat_records, report_writer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def smoke(smoke_run):
    run = smoke_run.result()
    assert run.resumed.returncode == 0, run.killed_output[-2000:] + run.resumed.stdout[-3000:]
    return run


@pytest.fixture(scope="module")
def tables(smoke):
    return json.loads((smoke.results / "smoke" / "tables.json").read_text())


def test_a_killed_run_resumes_without_redoing_a_finished_step(smoke):
    assert len(smoke.finished_before_kill) == smoke.kill_after
    skipped = re.findall(r"\] \S+: (\S+) done earlier, skipped", smoke.resumed.stdout)
    assert set(smoke.finished_before_kill) <= set(skipped)


def test_the_report_has_every_section_and_figure(smoke, tables):
    report = (smoke.results / "smoke" / "REPORT.md").read_text()
    for title in report_writer.TITLES.values():
        assert title in report
    assert "Steps not run yet" not in report
    # BlurNet's 6, Defend++'s 4, 3 forests, the accuracy curve
    assert (smoke.results / "REPORT.md").read_text().count("](smoke/figures/") == 14
    figures = smoke.results / "smoke" / "figures"
    for fig in ("fig1", "fig2", "fig3", "fig4", "fig5", "fig6", "defendpp_mnist", "defendpp_lisa", "defendpp_fig7"):
        shown = 2 if fig == "defendpp_mnist" else 1  # Defend++ and its reconstruction-weight variant
        assert len(list(figures.glob(f"{fig}_*.png"))) == shown
    for forest in ("forest_table2_avg", "forest_table2_worst", "forest_table4"):
        assert (figures / f"{forest}.pdf").is_file()
    assert tables["metadata"]["precisions"] == ["float32"] and "compute precision: float32" in report
    for caption in (
        "**Accuracy against the FGSM budget (Fig. 7):**",
        "**Attack-strength checks**",
        "**Transfer (Tables 7-8):**",
        "**Reconstruction weight",
    ):
        assert caption in report
    assert "| defendpp |" in report  # Defend++ on LISA is a row of the white-box table


def test_table1_rebuilds_the_white_box_stickers_the_engine_scored(tables):
    """Table I's un-blurred row rebuilds the stickers from the stored noise: it must agree with the RP2
    engine's own predictions in the white-box step."""
    data = tables["data"]
    for source in ("original", "baseline"):
        rebuilt = {r["target"]: r["asr"] for r in data["transfer"][source]["variants"]["none"]["rows"]}
        engine = {r["target"]: r["asr"] for r in data["whitebox"][source]["rows"] if r["lambda"] == 0.002}
        assert rebuilt == engine


def test_claims_and_the_seeded_rows_intervals(tables):
    assert {c["verdict"] for c in tables["claims"]} <= {"held", "not held", "inconclusive", "not measured"}
    interval = tables["intervals"]["whitebox"]["baseline"]["avg_asr"]  # smoke: the baseline under seeds 0, 1
    assert interval["seeds"] == 2 and interval["lo"] <= interval["mean"] <= interval["hi"]
    assert tables["intervals"]["models"]["baseline"]["legit_accuracy"]["seeds"] == 2


def test_pgd_on_the_original_weights_gives_the_stated_table4_number(tables):
    assert tables["data"]["pgd"]["original"]["asr"] == pytest.approx(0.375)


def test_the_accuracy_curve_point_is_the_snapshot_attacked(smoke, tables):
    """The baseline's snapshot after epoch 1 is the 1-epoch model itself: one point, its white-box run."""
    data = tables["data"]
    assert [p["epoch"] for p in data["accuracy_curve"]["baseline"]] == [1]
    snapshot = json.loads((smoke.work / "accuracy_curve" / "baseline" / "epoch1" / "results.json").read_text())
    assert [r["asr"] for r in snapshot["rows"]] == [
        r["asr"] for r in data["whitebox"]["baseline"]["rows"] if r["lambda"] == 0.002
    ]


def test_defendpp_rows_transfer_and_the_fgsm_curve(smoke, tables):
    data = tables["data"]
    assert set(data["defendpp"]["robustness"]) == {"mnist_baseline", "mnist_defendpp", "mnist_defendpp_rw10"}
    assert [(t["source"], t["target"]) for t in data["defendpp"]["transfer"].values()] == [
        ("mnist_baseline", "mnist_defendpp")
    ]
    assert data["defendpp"]["models"]["mnist_defendpp"]["split"]["mnist_split"] == "official"
    curve = {
        r.variant
        for r in flat_records.read(smoke.results / "smoke" / "results.json")
        if (r.experiment, r.model, r.attack, r.metric) == ("defendpp_mnist", "mnist_baseline", "fgsm_curve", "accuracy")
    }
    assert curve == {None} | {f"eps{e / 10:g}" for e in range(1, 11)}  # the ε-0.2 headline and Fig. 7's points
