"""The results as flat records, robustbench-like: one ResultRow per number, every field named.

A row's key is (experiment, model, variant, seed, attack, lambda, target, metric): no two rows share
it. A per-target RP2 number has its λ and target; an aggregate over the targets (avg / worst ASR,
mean L2) has target null, and λ null when each target is taken at its strongest λ (the sweep); a
number with no attack (legit accuracy) has attack "none". The report's seed statistics read these
rows (reports.seed_statistics.from_records), so results.json holds what the report shows.

Written beside REPORT.md as results.json ({"schema", "commit", "dirty", "records"}) and results.csv
(the same fields as columns, one row per record). Also a conversion of an older results directory:

    python -m blurnet_tf.reports.flat_records results/full   # tables.json -> results.json
"""

import csv
import dataclasses
import json
import math
import pathlib
import sys

from blurnet_tf import files, paper, rundir
from blurnet_tf.reports import defendpp_evidence

SCHEMA = 1
JSON_FILE = "results.json"
CSV_FILE = "results.csv"
VICTIMS = 40
SWEEP_KEY = "best_lambda_per_target"
KEY = ("experiment", "model", "variant", "seed", "attack", "lambda", "target", "metric")
SUMMARY_METRICS = ("avg_asr", "worst_asr", "avg_targeted", "l2")


@dataclasses.dataclass(frozen=True)
class ResultRow:
    experiment: str  # table1_transfer, table2_whitebox, table2_smoothing, table2_accuracy_curve, table3_lowfreq,
    #                        table3_adaptive, table4_pgd, table5_adaptive_adv_train, models,
    #                        pixel_deflection[_adaptive],
    #                        defendpp_*
    model: str  # the Table row ("original": the RP2 authors' weights; "smoothing_0.2": Table II's row)
    variant: str | None  # Table I: the blur; Table III: the DCT size; Table V: the regulariser; PD: the defence;
    #                        the accuracy curve: "epoch<N>"; Defend++ transfer: the source model
    seed: int  # training seed of the model and RP2 noise seed of the attack
    attack: str  # rp2, rp2_lowfreq, rp2_adaptive, pgd_linf, an attack's name, or none
    lam: float | None  # "lambda" in the files
    target: int | None
    metric: str  # asr, targeted, l2, avg_asr, worst_asr, avg_targeted, legit_accuracy, accuracy, ...
    value: float | None  # null: not finite (a median L2 where the attack failed on most images)
    images: int | None  # what the value is measured on: the 40 victims, the test split, ...
    success: str | None  # per victim in order, "1" where the sticker moved the prediction (null: not recorded)
    paper: float | None  # the paper's number for this cell, where it has one
    precision: str  # compute precision of the run (float32 or mixed_bfloat16)
    commit: str  # the commit the report was written from
    dirty: bool | None  # whether that tree had uncommitted changes (null: unknown)
    schema: int = SCHEMA

    def to_json(self):
        return {name: getattr(self, "lam" if name == "lambda" else name) for name in FIELDS}

    @classmethod
    def from_json(cls, data):
        return cls(**{("lam" if k == "lambda" else k): v for k, v in data.items() if k in FIELDS})

    @property
    def key(self):
        return tuple(self.to_json()[k] for k in KEY)


FIELDS = ("schema",) + tuple(
    "lambda" if f.name == "lam" else f.name for f in dataclasses.fields(ResultRow) if f.name != "schema"
)
_TYPES = {"schema": int, "seed": int, "target": int, "images": int, "lambda": float, "value": float, "paper": float}


def stamp(commit):
    """(commit, dirty) of files.git_commit()'s '<sha>[-dirty]' ('unknown': dirty unknown)."""
    if commit == "unknown":
        return commit, None
    return commit.removesuffix("-dirty"), commit.endswith("-dirty")


def _number(v):
    return None if v is None or not math.isfinite(v) else float(v)


def _bits(success):
    return "".join(str(int(s)) for s in success) if success else None


def summaries(aggregate):
    """(lambda or None, summary) of an aggregate, stored as {"lambda=<l>": ...} or as a named list."""
    if isinstance(aggregate, list):
        return [(a["lambda"], a) for a in aggregate]
    return [(None if k == SWEEP_KEY else float(k.split("=", 1)[1]), a) for k, a in aggregate.items()]


class RecordBuilder:
    def __init__(self, commit, dirty):
        self.rows, self.commit, self.dirty = [], commit, dirty

    def add(
        self,
        experiment,
        model,
        metric,
        value,
        seed,
        precision="float32",
        variant=None,
        attack="none",
        lam=None,
        target=None,
        images=None,
        success=None,
        ref=None,
    ):
        self.rows.append(
            ResultRow(
                experiment,
                model,
                variant,
                int(seed),
                attack,
                lam,
                target,
                metric,
                _number(value),
                images,
                success,
                _number(ref),
                precision,
                self.commit,
                self.dirty,
            )
        )

    def _curves(self, experiment, model, attack, result, where, source=None):
        for variant, metric, value in defendpp_evidence.grid_records(result, attack):
            self.add(
                experiment, model, metric, float(value), variant=f"{source}/{variant}" if source else variant, **where
            )

    def rp2(self, experiment, model, result, seed, ref=None, attack="rp2", variant=None, ref_lambda=paper.RP2_LAMBDA):
        """Per-target rows (asr with its victims, targeted, l2) and the aggregates of an RP2 result."""
        ref, common = (
            ref or {},
            dict(seed=seed, precision=result.get("precision", "float32"), variant=variant, attack=attack),
        )
        for r in result["rows"]:
            where = dict(common, lam=r["lambda"], target=r["target"], images=len(r.get("success") or ()) or VICTIMS)
            self.add(
                experiment,
                model,
                "asr",
                r["asr"],
                success=_bits(r.get("success")),
                ref=ref.get("asr") if r["target"] == 12 and r["lambda"] == ref_lambda else None,
                **where,
            )
            self.add(experiment, model, "targeted", r["targeted"], **where)
            self.add(experiment, model, "l2", r["l2"], **where)
        for lam, summary in summaries(result["aggregate"]) if "aggregate" in result else [(ref_lambda, result)]:
            for metric in SUMMARY_METRICS:
                self.add(
                    experiment,
                    model,
                    metric,
                    summary[metric],
                    lam=lam,
                    images=VICTIMS,
                    ref=ref.get(metric) if lam == ref_lambda else None,
                    **common,
                )

    def run(self, seed, d):  # noqa: C901 - issue 40's restructure splits it
        """One seed's numbers of Tables I-V (collect's shape: the first seed's, or a `seeds` run)."""
        for row, m in d.get("models", {}).items():
            if m:
                p = dict(seed=seed, precision=m.get("precision", "float32"))
                self.add(
                    "models",
                    row,
                    "legit_accuracy",
                    m["legit_accuracy"],
                    images=m.get("test_images"),
                    ref=paper.TABLE2.get(row, {}).get("legit"),
                    **p,
                )
                self.add("models", row, "victims_correct", m.get("victims_correct"), images=VICTIMS, **p)
        for row, w in d.get("whitebox", {}).items():
            if w:
                self.rp2(
                    "table2_whitebox", row, w, seed, paper.TABLE2.get("baseline" if row == rundir.ORIGINAL else row)
                )
                if "clean_victim_accuracy" in w:
                    self.add(
                        "table2_whitebox",
                        row,
                        "victim_accuracy",
                        w["clean_victim_accuracy"],
                        seed,
                        w.get("precision", "float32"),
                        images=VICTIMS,
                    )
        for source, t in d.get("transfer", {}).items():
            for name, v in (t or {}).get("variants", {}).items():
                ref = paper.TABLE1.get("baseline" if name == "none" else name, {})
                self.add(
                    "table1_transfer",
                    source,
                    "victim_accuracy",
                    v["victim_accuracy"],
                    seed,
                    variant=name,
                    images=VICTIMS,
                    ref=ref.get("accuracy"),
                )
                self.add("table1_transfer", source, "legit_accuracy", v["legit_accuracy"], seed, variant=name)
                self.rp2("table1_transfer", source, v, seed, ref, variant=name, ref_lambda=t["lambda"])
        for key, v in d.get("lowfreq", {}).items():
            if v:
                row, dct = key.split("/")
                self.rp2(
                    "table3_lowfreq",
                    row,
                    v,
                    seed,
                    paper.TABLE3.get(row) if dct == "dct16" else None,
                    "rp2_lowfreq",
                    dct,
                )
        for row, v in d.get("adaptive", {}).items():
            if v:
                self.rp2("table3_adaptive", row, v, seed, paper.TABLE3.get(row), "rp2_adaptive")
        for reg, v in d.get("adaptive_adv_train", {}).items():
            if v:
                self.rp2("table5_adaptive_adv_train", "adv_train", v, seed, paper.TABLE5.get(reg), "rp2_adaptive", reg)
        for row, p in d.get("pgd", {}).items():
            if p:
                common = dict(seed=seed, precision=p.get("precision", "float32"), attack="pgd_linf", images=VICTIMS)
                self.add(
                    "table4_pgd",
                    row,
                    "asr",
                    p["asr"],
                    success=_bits(p.get("success")),
                    ref=paper.TABLE4["asr"],
                    **common,
                )
                self.add("table4_pgd", row, "l2", p["l2"], ref=paper.TABLE4["l2"].get(row), **common)

    def single_seed(self, seed, data):  # noqa: C901 - issue 40's restructure splits it
        """Smoothing, Pixel Deflection and Defend++: run under the first seed only."""
        for sigma, s in (data.get("smoothing") or {}).items():
            if s:
                row = f"smoothing_{sigma}"
                ref = paper.TABLE2.get(row, {})
                self.add("table2_smoothing", row, "legit_accuracy", s["legit_accuracy"], seed, ref=ref.get("legit"))
                self.add("table2_smoothing", row, "victim_accuracy", s["victim_accuracy"], seed, images=VICTIMS)
                self.rp2("table2_smoothing", row, s, seed, ref)
        pd = data.get("pixel_deflection")
        for kind, (accuracy, l2) in {"": ("accuracy", "l2"), "_adaptive": ("adaptive_accuracy", "adaptive_l2")}.items():
            for defence, by_attack in (pd or {}).get(accuracy, {}).items():
                for attack, acc in by_attack.items():
                    self.add(
                        f"pixel_deflection{kind}", pd["model"], "accuracy", acc, seed, variant=defence, attack=attack
                    )
            for attack, value in (pd or {}).get(l2, {}).items():
                self.add(f"pixel_deflection{kind}", pd["model"], "l2", value, seed, attack=attack)
        for row, points in (data.get("accuracy_curve") or {}).items():
            for point in points:
                where = dict(seed=seed, variant=f"epoch{point['epoch']}", precision=point.get("precision", "float32"))
                self.add("table2_accuracy_curve", row, "legit_accuracy", point["legit_accuracy"], **where)
                for metric in ("avg_asr", "worst_asr"):
                    self.add(
                        "table2_accuracy_curve", row, metric, point[metric], attack="rp2", lam=paper.RP2_LAMBDA, **where
                    )
        dpp = data.get("defendpp") or {}
        for row, m in dpp.get("models", {}).items():
            self.add(
                "defendpp_mnist",
                row,
                "legit_accuracy",
                m["legit_accuracy"],
                seed,
                images=(m.get("split") or {}).get("test_images"),
                precision=m.get("precision", "float32"),
            )
        for row, r in dpp.get("robustness", {}).items():
            ref = (
                paper.DEFENDPP_TABLE2.get(row)
                or paper.DEFENDPP_TABLE1.get(row)
                or paper.DEFENDPP_TABLE2_RESNET18.get(row)
                or {}
            )
            for attack, res in r["results"].items():
                where = dict(seed=seed, attack="none" if attack == "clean" else attack, images=res.get("images"))
                self.add(
                    "defendpp_mnist",
                    row,
                    "accuracy",
                    res.get("accuracy"),
                    ref=ref[attack] / 100 if attack in ref else None,
                    **where,
                )
                if "median_l2" in res:
                    self.add("defendpp_mnist", row, "median_l2", res["median_l2"], **where)
                self._curves("defendpp_mnist", row, attack, res, where)
        for name, t in (dpp.get("transfer") or {}).items():
            for attack, res in t["results"].items():
                where = dict(seed=seed, attack=attack, images=res.get("images"))
                self.add(
                    "defendpp_transfer", t["target"], "accuracy", res.get("accuracy"), variant=t["source"], **where
                )
                self._curves("defendpp_transfer", t["target"], attack, res, where, source=t["source"])
        for name, r in (dpp.get("reconstructions") or {}).items():
            for metric in ("fraction_below_1", "ratio_median", "ratio_max", "reconstruction_error_clean"):
                self.add("defendpp_reconstructions", name, metric, r[metric], seed, attack="fgsm", images=r["images"])


def build(data, commit="unknown", dirty=None):
    """The records of a collected run directory (reports.collect) or of an older tables.json's "data"
    (no `seeds`: one seed, 0), in a stable order: the first seed's, then the other seeds'."""
    seeds = data.get("seeds") or {}
    first = (seeds.get("seeds") or [0])[0]
    b = RecordBuilder(commit, dirty)
    b.run(first, data)
    b.single_seed(first, data)
    for seed, run in sorted((seeds.get("runs") or {}).items(), key=lambda kv: int(kv[0])):
        b.run(int(seed), run)
    return b.rows


def write(out_dir, records, commit, dirty, **extra):
    """results.json (one record a line) and results.csv in out_dir, each written atomically."""
    out_dir = pathlib.Path(out_dir)
    files.write_text(out_dir / JSON_FILE, _json_text(records, commit, dirty, **extra))
    files.write_csv(out_dir / CSV_FILE, [FIELDS] + [[_cell(r.to_json()[f]) for f in FIELDS] for r in records])


def _json_text(records, commit, dirty, **extra):
    head = json.dumps({"schema": SCHEMA, "commit": commit, "dirty": dirty, **extra})[:-1]
    lines = ",\n".join(json.dumps(r.to_json(), allow_nan=False) for r in records)
    return f'{head}, "records": [\n{lines}\n]}}\n'


def _cell(v):
    return "" if v is None else ("true" if v is True else "false" if v is False else v)


def read(path):
    """The records of a results.json or results.csv."""
    path = pathlib.Path(path)
    if path.suffix == ".json":
        return [ResultRow.from_json(r) for r in files.read_json(path, missing_ok=False)["records"]]
    with open(path, newline="", encoding="utf-8") as f:
        return [ResultRow.from_json({k: _parse(k, v) for k, v in row.items()}) for row in csv.DictReader(f)]


def _parse(field, text):
    if text == "":
        return None
    if field == "dirty":
        return text == "true"
    return _TYPES.get(field, str)(text)


def convert(results_dir):
    """results.json of a results directory written before the records (its tables.json has no
    schema): the records rebuilt from the tables' numbers, stamped with the commit stored there."""
    results_dir = pathlib.Path(results_dir)
    tables = files.read_json(results_dir / "tables.json", missing_ok=False)
    commit, dirty = stamp(tables["metadata"]["commit"])
    records = build(tables["data"], commit, dirty)
    files.write_text(results_dir / JSON_FILE, _json_text(records, commit, dirty, derived_from="tables.json"))
    return records


if __name__ == "__main__":
    print(f"{len(convert(sys.argv[1]))} records written to {pathlib.Path(sys.argv[1]) / JSON_FILE}")
