"""BlurNet's qualitative claims, each judged on the collected numbers: held, not held, or not measured."""

from blurnet_tf.reports.blurnet_tables import _agg, _table2_rows
from blurnet_tf.reports.format import _pct

PGD_BROKEN = 0.9        # "PGD breaks a model": ASR at least this


def claims(data):
    """The paper's qualitative claims, each as (claim, verdict, evidence); verdict is
    'held', 'not held' or 'not measured' (its rows are missing from this profile)."""
    out = []
    # 1. Feature-map blur beats input blur at equal kernel size (Table I).
    ev, ok, seen = [], True, False
    for source, result in data["transfer"].items():
        if not result:
            continue
        v = result["variants"]
        for name in v:
            if name.startswith("input_blur_"):
                k = name.rsplit("_", 1)[1]
                a_in, a_l1 = v[name]["avg_asr"], v[f"l1_blur_{k}"]["avg_asr"]
                seen, ok = True, ok and a_l1 < a_in  # strictly: a tie is not "beats"
                ev.append(f"{source} {k}x{k}: avg ASR L1 blur {_pct(a_l1)}% vs input blur {_pct(a_in)}%")
    out.append(("Feature-map blur beats input blur at equal kernel size (Table I, average ASR over 17 targets)",
                _verdict(seen, ok), "; ".join(ev)))
    # 2. TV and Tik_hf have the lowest white-box worst-case ASR (Table II).
    worst = {row: agg[f"lambda={_first_lambda(agg)}"]["worst_asr"] for row, _, agg, p in _table2_rows(data)
             if row != "original" and p}  # the paper's own rows (Defend++ is ours)
    tv = [worst[r] for r in worst if r.startswith("tv_")]
    others = [v for r, v in worst.items() if not r.startswith("tv_") and r != "tik_hf"]
    seen = bool(tv) and "tik_hf" in worst and bool(others)
    ok = seen and max(min(tv), worst["tik_hf"]) < min(others)
    out.append(("TV and Tik_hf have the lowest white-box worst-case ASR (Table II; strictly below every other "
                "row, best TV row)", _verdict(seen, ok),
                ", ".join(f"{r} {_pct(v)}%" for r, v in sorted(worst.items(), key=lambda kv: kv[1]))))
    # 3. PGD breaks every model (Table IV).
    pgd = {r: p["asr"] for r, p in data["pgd"].items() if p}
    out.append((f"PGD (ε 8/255, 10 steps) breaks every model (ASR ≥ {PGD_BROKEN:.0%}) (Table IV)",
                _verdict(bool(pgd), all(v >= PGD_BROKEN for v in pgd.values())),
                ", ".join(f"{r} {_pct(v)}%" for r, v in pgd.items())))
    # 4. The low-frequency attack hurts the 5x5 conv model most (Table III vs II).
    gain = {}
    for key, v in data["lowfreq"].items():
        row = key.split("/")[0]
        if key.endswith("/dct16") and v and data["whitebox"].get(row):
            gain[row] = _agg(v)["avg_asr"] - _agg(data["whitebox"][row])["avg_asr"]
    seen = "conv_5" in gain and len(gain) > 1
    ok = seen and all(gain["conv_5"] > g for r, g in gain.items() if r != "conv_5")
    out.append(("The low-frequency attack hurts the 5x5 conv model most (increase of average ASR over white-box, "
                "strictly the largest)", _verdict(seen, ok),
                ", ".join(f"{r} {100 * g:+.1f} pt" for r, g in gain.items())))
    return out


def _first_lambda(agg):
    return next(k for k in agg if k.startswith("lambda=")).split("=")[1]


def _verdict(seen, ok):
    return "not measured" if not seen else ("held" if ok else "not held")
