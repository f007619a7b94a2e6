"""docs/rubin.md and docs/rubin.png from docs/rubin.json (written by ``scripts/rubin_compare.py``): every number on the
page is read from the JSON, so ``tests/test_rubin_doc.py`` can check the page against it."""

from __future__ import annotations

from pathlib import Path

from age_plot import age_axes, nan_for_none, save_figure

T2 = "t2"
SNN_Y = "SuperNNova SN_vs_other, y named Y (diagnostic)"
#: fewer positives than this in a bucket: its figures are flagged as noisy
FEW = 30
#: fink-broker's cats_class codes (rubin/science.py) → CATS class
CATS_CODES = {-1: "–", 11: "SN-like", 12: "Fast", 13: "Long", 21: "Periodic", 22: "AGN"}


def _f(value, digits: int = 3) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _met(flag: bool) -> str:
    return "**met**" if flag else "**missed**"


def bucket_table(result: dict, cell, modules=None) -> list[str]:
    names = list(result["buckets"])
    lines = ["| module | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    for m in modules or result["modules"]:
        cells = [cell(result["buckets"][b], m) for b in names]
        if any(c != "–" for c in cells):
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return lines


def task_tables(result: dict, task: str, title: str) -> list[str]:
    get = lambda key: lambda e, m: _f(e["modules"][m][task][key])
    count = "n_sn" if task == "sn" else "n_ia"
    few = [f"{b} d ({e[count]})" for b, e in result["buckets"].items() if e[count] < FEW]
    lines = [f"### {title}: ROC-AUC over every alert of the bucket (an alert a module does not classify ranks last)", "",
             *bucket_table(result, get("auc_all")), "",
             *([f"Fewer than {FEW} positives, so noisy figures: " + ", ".join(few) + ".", ""] if few else []),
             f"### {title}: ROC-AUC over the alerts each module classifies", "", *bucket_table(result, get("auc_classified")), ""]
    if task == "sn":
        lines += ["### SN vs rest: ROC-AUC over the alerts that every module with an SN score classifies", "",
                  *bucket_table(result, lambda e, m: _f(e["common"]["sn_auc"].get(m)),
                                list(next(iter(result["buckets"].values()))["common"]["sn_auc"])),
                  "", "Alerts in that common set: " + ", ".join(f"{b} d {e['common']['n']:,}"
                                                                for b, e in result["buckets"].items()) + ".", ""]
    lines += [f"### {title}: purity at each module's production selection", "", *bucket_table(result, get("purity")), "",
              f"### {title}: efficiency at each module's production selection", "", *bucket_table(result, get("efficiency")), ""]
    return lines


AUC_TARGET_NAMES = {
    "sn_auc_above_snn_and_cats_all_alerts": "t2's SN-vs-rest AUC above SuperNNova's and CATS's at every age, over every alert",
    "sn_auc_above_snn_and_cats_classified": "the same, each module on the alerts it classifies",
    "sn_auc_above_snn_and_cats_common_alerts": "the same, on the alerts all of them classify"}


def targets_lines(result: dict) -> list[str]:
    t, per_fold = result["targets"], result["targets_per_fold"]
    fails = lambda key: ", ".join(b for b, ok in t[key]["by_bucket"].items() if not ok) or "none"
    folds = lambda key: "; ".join(f"fold {f}: " + (", ".join(missed) or "none")
                                  for f, missed in per_fold[key]["buckets_missed"].items())
    lines = ["| target | pooled over the folds' alerts | per fold (buckets missed) |", "|---|---|---|"]
    for key, name in AUC_TARGET_NAMES.items():
        lines.append(f"| {name} | {_met(t[key]['met'])} (buckets missed: {fails(key)}) | "
                     f"met in {per_fold[key]['met_in']} of {per_fold[key]['folds']} folds ({folds(key)}) |")
    return lines + [
        f"| t2 ≥ 10,000 alerts/s/core, realistic | {_met(t['throughput_realistic_10000']['met'])} "
        f"({t['throughput_realistic_10000']['value']:,.0f}) | one measurement, over every fold's alerts |",
        f"| t2 ≥ 5,000 alerts/s/core, every alert classified | {_met(t['throughput_every_alert_5000']['met'])} "
        f"({t['throughput_every_alert_5000']['value']:,.0f}) | one measurement, over every fold's alerts |", ""]


def _spread(values) -> str:
    values = [v for v in values if v is not None]
    return f" ({max(values) - min(values):.3f})" if values else ""


def fold_lines(result: dict) -> list[str]:
    """SN-vs-rest ROC-AUC over every alert, fold by fold (cells: fold 0 / fold 1 / ... (spread)), for each module
    with an SN score."""
    folds, names = result["folds"], list(result["buckets"])
    lines = ["| module | " + " | ".join(f"{b} d" for b in names) + " |", "|---|" + "---:|" * len(names)]
    for m in result["modules"]:
        rows = [[f["buckets"][b]["modules"][m]["sn"]["auc_all"] if b in f["buckets"] else None for f in folds]
                for b in names]
        if any(v is not None for row in rows for v in row):
            lines.append(f"| {m} | " + " | ".join(" / ".join(_f(v) for v in row) + _spread(row) for row in rows) + " |")
    return lines + [""]


def throughput_lines(result: dict) -> list[str]:
    lines = ["| module | alerts | wall s | alerts/s/core (wall) | alerts per CPU-s |", "|---|---:|---:|---:|---:|"]
    for name, r in result["throughput"].items():
        lines.append(f"| {name} | {r['alerts']:,} | {r['wall_s']:.2f} | {r['alerts_per_wall_s']:,.0f} | "
                     f"{r['alerts_per_cpu_s']:,.0f} |")
    snn = result["throughput"].get("SuperNNova SN_vs_other")
    if snn:
        lines += ["", "Ratios in this run (the machine is shared, so ratios travel better than rates): t2 realistic "
                  f"{result['throughput']['t2 realistic']['alerts_per_wall_s'] / snn['alerts_per_wall_s']:.1f}× "
                  "SuperNNova, t2 with every alert classified "
                  f"{result['throughput']['t2 every alert classified']['alerts_per_wall_s'] / snn['alerts_per_wall_s']:.1f}× "
                  "SuperNNova."]
    return lines + [""]


def real_lines(result: dict) -> list[str]:
    fink = [m for m in ("SuperNNova SN_vs_other", "SuperNNova elasticc_ia", "CATS", "Early SN Ia")
            if any(m in r for r in result["real_alerts"])]
    head = ["file", "diaSourceId", "det.", "forced", "t2 status", "t2 decision", "t2 P(SN)", *fink,
            "Fink stored: SNN / CATS / Early SN Ia"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in result["real_alerts"]:
        cells = [r["file"], str(r["diaSourceId"]), str(r["detections"]), str(r["forced"]), r["t2_status"],
                 r["t2_decision"] or "–", _f(r["t2_p_sn"])]
        for m in fink:
            v = r.get(m)
            if isinstance(v, list):
                cells.append("–" if max(v) <= 0 else f"{['SN-like', 'Fast', 'Long', 'Periodic', 'AGN'][v.index(max(v))]} {max(v):.2f}")
            else:
                cells.append(_f(v))
        f = r.get("fink_stored")
        cells.append("–" if f is None else f"{_f(f['snnSnVsOthers_score'])} / {CATS_CODES.get(f['cats_class'], '–')}"
                     f"{'' if f['cats_class'] == -1 else ' ' + _f(f['cats_score'], 2)} / {_f(f['earlySNIa_score'])}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines + [""]


def _pins(*settings) -> str:
    values = {v for setting in settings for v in setting.values()}
    return f"{values.pop()} thread" if len(values) == 1 else str(settings)


def agreement(check: dict) -> str:
    return "the same score here (within 1e-4; CATS: same class and score) for " + ", ".join(
        f"{m} {n} of {check['alerts']}" for m, n in check["same"].items())


def markdown(result: dict) -> str:
    v, p, fk = result["views"], result["provenance"], result["fink"]
    counts = ", ".join(f"{k} {n}" for k, n in v["classes"].items())
    errors = result["module_errors"]
    sizes = ", ".join(f"{b} d: {e['n']:,} ({e['n_sn']:,} SN, {e['n_ia']:,} SN Ia)" for b, e in result["buckets"].items())
    cond = result["conditions_before"], result["conditions_after"]
    trained = "; ".join(f"fold {f['fold']}: {f['model']['training']['epochs_run']} epochs, "
                        f"{f['model']['training']['training_examples']:,} training views, "
                        f"{f['views']['alerts']:,} held-out alerts" for f in result["folds"])
    return "\n".join([
        "# t2 beside Fink's Rubin classifiers, on the same alerts", "",
        f"Generated by `{result['command']}` on {result['created']} (`python scripts/rubin_compare.py --page` renders "
        f"this page and the figure again from `docs/rubin.json`), "
        f"commit {p['commit']}, in {result['seconds']:,.0f} s on one core. Shipped Rubin model SHA-256 `{p['model_sha256']}`; "
        "fold models' SHA-256: " + ", ".join(f"fold {f['fold']} `{h}`" for f, h in zip(result["folds"], p["fold_model_sha256"]))
        + f". Load average (1/5/15 min) {cond[0]['load_average_1_5_15']} before, "
        f"{cond[1]['load_average_1_5_15']} after (2 cores, shared); thread pools (OpenMP, MKL, OpenBLAS, numexpr, "
        f"TensorFlow, torch) pinned to {_pins(cond[0]['threads']['environment'], fk['threads'])}. Fink's modules: "
        f"fink-science {fk['versions']['fink_science']}, SuperNNova {fk['versions']['supernnova']}, TensorFlow "
        f"{fk['versions']['tensorflow']}, torch {fk['versions']['torch']}, pandas {fk['versions']['pandas']}, numpy "
        f"{fk['versions']['numpy']}, scikit-learn {fk['versions']['scikit-learn']}, light-curve {fk['versions']['light-curve']}, "
        f"iminuit {fk['versions']['iminuit']}.", "",
        "## What meets what", "",
        "**These are simulations meeting other simulations.** SuperNNova, CATS and Early SN Ia were trained on ELAsTiCC; "
        "the alerts here are PLAsTiCC light curves. Both are LSST simulations, from different generations (other "
        "cadence, noise model, templates and class mix), so Fink's modules are out of their training distribution, "
        "while t2 is in its own: each fold model was trained on the other folds of the same PLAsTiCC set. The "
        "comparison favours t2; it says little about the modules on their own data, or about anyone on real Rubin "
        "alerts.", "",
        f"**The alerts.** The shipped model `t2_lsst.tflite` was trained on every PLAsTiCC object (its `--ship` step), "
        f"so no object is held out from it. Its cross-validation ({v['n_folds']} folds, seed {v['seed']}, in "
        f"`t2_lsst_metrics.json`) held out each fold's objects; every fold's model is retrained here by the same "
        f"code and recipe ({trained}), and scores only its own fold's held-out objects, which no t2 model that "
        f"scores them has seen. The {v['heldout_objects']:,} held-out objects of the {len(result['folds'])} folds "
        f"give the alerts: {v['objects']:,} of them (class-stratified per fold, seeded; {counts}), each at the "
        f"alerts its cross-validation scored (one seeded detection per alert-age bucket), {v['alerts']:,} alerts, "
        f"packed as `lsst.v10_0` packets (`diaSource`, `prvDiaSources` and `prvDiaForcedSources` of the past 365 days, "
        f"`diaObject`; nJy, bands u..y; each PLAsTiCC measurement once, detections in `prvDiaSources`, the others in "
        "`prvDiaForcedSources`, as in t2's training views) and read back by `fink_t2.alerts.rubin.read_rubin_table`. "
        "Every module reads the `c*` columns Fink's Rubin stage builds with `concat_col`; t2 also reads the forced "
        "photometry, Fink's modules do not (Fink does not pass it). The packing loses nothing t2 reads: on the "
        f"{v['packing_check']['alerts_compared']:,} alerts it classifies, its probabilities from the packets differ "
        f"from those on its cross-validation's own views of the same alerts by at most "
        f"{v['packing_check']['max_abs_probability_difference']:.2g}. Nothing "
        "was tuned on these alerts. The row `" + result["modules"][1] + "` is the shipped model on the same alerts: it "
        "has seen them in training, so it is shown for reference only.", "",
        f"**Classes.** SN = {', '.join(result['sn_classes'])}: ELAsTiCC's SN-like broad class, the one CATS and "
        "SuperNNova's `SN_vs_other` were trained to find (SLSN-I is in its *Long* class, so it counts as rest). "
        f"SN Ia = {', '.join(result['ia_classes'])} only (91bg-like and Iax are separate classes in both simulations). "
        "t2's SN score is the sum of its calibrated probabilities over the SN classes.", "",
        "**Production selections** (Fink's Rubin filters):", "",
        *[f"- {m}: {t}" for m, t in result["thresholds"].items()], "",
        *(["**Modules that could not run:** " + "; ".join(f"{m}: `{e.strip().splitlines()[-1]}`" for m, e in errors.items()), ""]
          if errors else ["All five modules ran on every alert.", ""]),
        *(["CATS ran from its Keras 2 file: fink-science 8.53's SavedModel export of the same model is not in the "
           "snapshot (see `scripts/rubin_compare_fink.py`)."] if fk["cats_from_keras2_file"] else []),
        "Fink's venv follows Fink's Rubin image as fink-docker last defined it (`containerfs/rubin/deps` at "
        "c32012e, 2026-02-03, before fink-broker PR #1235): pandas "
        f"{fk['versions']['pandas']}, scikit-learn, light-curve and iminuit at its pins. Under #1235's pandas "
        "2.3.3 (CI's Fink venv, docs/fink.md) SuperNNova 3.0.21 fails on every light curve (its band one-hot "
        "becomes bool and `normalize_arr` meets an object array); 3.0.51, which CI runs there, gives the same "
        "probabilities. The scores "
        "recomputed here are the ones Fink's Rubin stage wrote into the real alerts below, CATS included.", "",
        "**A finding on the way:** SuperNNova's model names the y band `Y` (its `cli_args.json`); Rubin alerts, and "
        "Fink's `cband`, say `y`, so in Fink's stage a y-band point does not match the model's bands. The row `"
        + SNN_Y + "` scores the same alerts with `y` renamed `Y`: a diagnostic of what that costs, not what Fink runs, "
        "and not used for the targets.", "",
        "**Folds pooled.** The tables below pool the alerts of every fold, each scored by a model that never saw "
        "it (t2: its fold's model; Fink's modules never saw PLAsTiCC), rather than averaging per-fold figures: the "
        "early and late buckets hold few supernovae per fold, so one ROC-AUC over three times the alerts is steadier "
        "than a mean of three noisy ones, and a spread over three folds says little. The folds' models share the "
        "recipe and are each temperature-calibrated, so their scores rank on one scale. What pooling could hide, "
        "a fold that goes the other way, is shown next to it: the targets are judged fold by fold as well, and the "
        "SN-vs-rest table over every alert is repeated per fold.", "",
        f"Alerts per age bucket (days since the first detection), pooled: {sizes}.", "",
        "## Targets", "", *targets_lines(result),
        "## Coverage (share of the bucket's alerts the module classifies)", "",
        *bucket_table(result, lambda e, m: _f(e["modules"][m]["coverage"])), "",
        "## SN vs rest", "", *task_tables(result, "sn", "SN vs rest"),
        "### SN vs rest, fold by fold: ROC-AUC over every alert of the bucket", "",
        "Each fold's held-out alerts alone (t2: that fold's model); each cell: " + " / ".join(
            f"fold {f['fold']}" for f in result["folds"]) + ", in brackets the spread (largest minus smallest).", "",
        *fold_lines(result),
        "## SN Ia vs rest", "", *task_tables(result, "ia", "SN Ia vs rest"),
        "## Throughput (alerts/s/core)", "",
        "Each module's pandas-UDF function (`.func`, what Spark calls on an Arrow batch) timed over batches of "
        f"{fk['batch']:,} alerts, over every fold's alerts at once, thread pools pinned to one thread. t2 is the shipped model through "
        "`t2_rubin_udf().func`, median of repeats: *realistic* is every alert above (the cuts reject those with fewer "
        "than 3 detections), *every alert classified* only those that pass. Fink's modules: one pass each.", "",
        *throughput_lines(result),
        "## The 32 real Rubin alerts", "",
        "What each module says on the real `lsst.v10_0` samples of `lsst_alerts/` (t2: the shipped model; CATS: its "
        "top class and probability, – when it does not classify; Early SN Ia: −1 when it does not classify). The 7 "
        "alerts of `part-2-918301.avro` passed Fink's own Rubin stage, which wrote its scores into them (last "
        "column): " + agreement(result["real_alerts_check"]) + ".", "",
        *real_lines(result),
        "![SN-vs-rest and SN Ia ROC-AUC against alert age](rubin.png)", "",
    ])


def plot(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(result["buckets"])
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, task, label in zip(axes, ("sn", "ia"), ("SN vs rest", "SN Ia vs rest")):
        for m in result["modules"]:
            y = [result["buckets"][b]["modules"][m][task]["auc_all"] for b in names]
            if any(v is not None for v in y):
                ax.plot(range(len(names)), nan_for_none(y), marker="o", label=m,
                        linestyle="--" if m != T2 and m.startswith("t2") else "-")
        for f in result["folds"]:
            y = [f["buckets"][b]["modules"][T2][task]["auc_all"] if b in f["buckets"] else None for b in names]
            ax.plot(range(len(names)), nan_for_none(y), marker=".", lw=0.5, alpha=0.5,
                    color="grey", label=f"{T2}, per fold" if f is result["folds"][0] else None)
        ax.axhline(0.5, color="grey", lw=0.5)
        age_axes(ax, names, f"ROC-AUC, {label} (every alert)", legend_size=7)
    fig.suptitle(f"t2 and Fink's Rubin classifiers on {result['views']['alerts']:,} PLAsTiCC held-out alerts of "
                 f"{len(result['folds'])} folds, pooled (lsst.v10_0 layout)", fontsize=10)
    save_figure(fig, path)


def write(result: dict, out: Path) -> dict:
    (Path(out) / "rubin.md").write_text(markdown(result))
    plot(result, Path(out) / "rubin.png")
    return result
