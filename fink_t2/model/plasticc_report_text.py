"""docs/plasticc.md as a rendering of docs/plasticc.json (``scripts/plasticc_report.py``); no figure is typed here
except the published ones this work is compared with (the issue's reference and the papers)."""

from __future__ import annotations

#: issue 19: avocado-style GP features + light-curve extractors + LightGBM, grouped stratified 5-fold CV
REFERENCE = {"gr": {"flat_log_loss": (1.087, 0.041), "macro_f1": 0.579},
             "ugrizy": {"flat_log_loss": (0.622, 0.034), "macro_f1": 0.766},
             "ugrizy_photoz": {"flat_log_loss": (0.452, 0.021), "macro_f1": 0.837},
             "detections": {"1": (1.89, 0.27), "3": (1.45, 0.46), "5": (1.29, 0.54), "10": (0.82, 0.72)}}
PAPER = {"gr": 0.834, "ugrizy_photoz": 0.507, "size_ratio": 18.0, "latency_ratio": 8.0}
TARGETS = {"gr": 0.834, "ugrizy_photoz": 0.45, "rubin_full": 0.62, "max_bytes": 100_000, "min_alerts_per_s": 10_000}


def _ms(entry, digits=3):
    return f"{entry['mean']:.{digits}f} ± {entry['std']:.{digits}f}"


def _verdict(value, target, lower=True):
    ok = value <= target if lower else value >= target
    return "met" if ok else f"missed by {abs(value - target):.3f}"


def _setting_rows(data):
    rows = []
    for name, label, paper, ref in (("gr", "g, r, no redshift, full curves (the paper's setting)", PAPER["gr"], "gr"),
                                    ("gr_copies3", "the same, + 3 resampled copies of each training object", PAPER["gr"],
                                     "gr"),
                                    ("ugrizy_photoz", "ugrizy + host photo-z, full curves", PAPER["ugrizy_photoz"],
                                     "ugrizy_photoz")):
        run = data["runs"].get(name)
        if not run and name == "gr_copies3":
            continue
        if not run:
            rows.append(f"| {label} | not run | | | | | {paper} | {REFERENCE[ref]['flat_log_loss'][0]} |")
            continue
        s = run["summary"]["full"]["all"]
        rows.append(f"| {label} | {run['n_folds']} | {_ms(s['flat_log_loss'])} | {_ms(s['log_loss'])} | "
                    f"{_ms(s['macro_f1'])} | {_ms(s['accuracy'])} | {paper} | "
                    f"{REFERENCE[ref]['flat_log_loss'][0]} ± {REFERENCE[ref]['flat_log_loss'][1]} / {REFERENCE[ref]['macro_f1']} |")
    return rows


def _confusion(run):
    names = run["class_names"]
    matrix = run["summary"]["full"]["all"]["confusion"]
    lines = ["| true \\ predicted | " + " | ".join(names) + " |", "|---" * (len(names) + 1) + "|"]
    for name, row in zip(names, matrix):
        total = max(1, sum(row))
        lines.append(f"| {name} | " + " | ".join(f"{100 * v / total:.0f}" for v in row) + " |")
    return lines


def _rubin(data):
    run = data["runs"].get("rubin")
    if not run:
        return ["The Rubin model has not been cross-validated yet."]
    s = run["summary"]
    last = s["last_detection"]["all"]
    out = [f"Cross-validation: {run['n_folds']} grouped stratified folds (`{run['command']}`).", "",
           f"At each object's last detection (what `fink-t2 classify` scores): flat log-loss "
           f"{_ms(last['flat_log_loss'])} (target ≤ {TARGETS['rubin_full']}: "
           f"{_verdict(last['flat_log_loss']['mean'], TARGETS['rubin_full'])}), macro-F1 {_ms(last['macro_f1'])}, "
           f"accuracy {_ms(last['accuracy'])}.", "",
           "Per alert age (days since the first detection; at most one alert per object and bucket; the prior is the "
           "training folds' class frequencies, scored by the plain log-loss; a uniform prior's flat log-loss is ln 14 = 2.639):", "",
           "| age (d) | alerts | flat log-loss | log-loss | prior log-loss | beats prior | macro-F1 |", "|---|---|---|---|---|---|---|"]
    for bucket, e in sorted(s["alerts"]["age_bucket"].items(), key=lambda kv: float(kv[0].split("-")[0].rstrip("+"))):
        out.append(f"| {bucket} | {e['n']['mean'] * run['n_folds']:.0f} | {_ms(e['flat_log_loss'])} | {_ms(e['log_loss'])} | "
                   f"{_ms(e['prior']['log_loss'])} | {'yes' if e['log_loss']['mean'] < e['prior']['log_loss']['mean'] else 'no'} | "
                   f"{_ms(e['macro_f1'])} |")
    buckets = s["alerts"]["age_bucket"].values()
    beats = sum(e["log_loss"]["mean"] < e["prior"]["log_loss"]["mean"] for e in buckets)
    out += ["", f"Log-loss below the prior's in {beats} of {len(buckets)} age buckets (target: all: "
            f"{'met' if beats == len(buckets) else 'missed'})."]
    out += ["", "At the k-th detection (the view an alert carries then: every measurement of the previous 365 days):", "",
            "| detection | alerts | flat log-loss | reference | below reference | macro-F1 | reference | log-loss | prior log-loss |",
            "|---|---|---|---|---|---|---|---|---|"]
    for k, e in sorted(s["detections"]["n_detections"].items(), key=lambda kv: int(kv[0])):
        ref_ll, ref_f1 = REFERENCE["detections"][k]
        out.append(f"| {k} | {e['n']['mean'] * run['n_folds']:.0f} | {_ms(e['flat_log_loss'])} | {ref_ll} | "
                   f"{_verdict(e['flat_log_loss']['mean'], ref_ll).replace('met', 'yes')} | {_ms(e['macro_f1'])} | {ref_f1} | "
                   f"{_ms(e['log_loss'])} | {_ms(e['prior']['log_loss'])} |")
    return out


def _compression(data):
    comp = data["runs"].get("compression")
    if not comp:
        return ["Not run in this session (cut for time): `python -m fink_t2.model.plasticc_compress` builds it."]
    rows = comp["variants"]
    saved = rows["savedmodel"].get("bytes")
    out = [f"Quality: flat log-loss of each variant on the first {comp['n_folds_of_5']} of the 5 folds (each fold's model "
           f"retrained, every variant built from it, tfmot variants fine-tuned {comp['fine_tune_epochs']} epochs); size and "
           "speed: the variants of the model trained on every object, one thread, latency of one alert (batch 1), alerts/s in "
           "chunks of 4 (the SavedModel through Keras).", "",
           "| variant | bytes | ratio to SavedModel | gzip bytes | load (ms) | latency (ms/alert) | alerts/s | CV flat log-loss |",
           "|---|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        if "bytes" not in r:
            out.append(f"| {name} | {r.get('error', 'failed')} | | | | | | |")
            continue
        cv = [v for v in r["cv_flat_log_loss"] if isinstance(v, float)]
        cv_text = f"{sum(cv) / len(cv):.3f}" if cv else "failed"
        out.append(f"| {name} | {r['bytes']:,} | {saved / r['bytes']:.1f}× | {r['gzip_bytes']:,} | {1000 * r['load_s']:.1f} | "
                   f"{r['latency_ms']:.3f} | {r['alerts_per_s']:,.0f} | {cv_text} |")
    best = rows.get("clustered_pruned", {})
    if "bytes" in best and "latency_ms" in rows["savedmodel"]:
        out += ["", f"Clustered + pruned + quantized vs SavedModel: {saved / best['bytes']:.1f}× smaller "
                f"(paper: {PAPER['size_ratio']:.0f}×), {rows['savedmodel']['latency_ms'] / best['latency_ms']:.1f}× lower latency "
                f"(paper: {PAPER['latency_ratio']:.0f}×)."]
    return out


def render(data: dict) -> str:
    runs = data["runs"]
    lines = ["# t2 on PLAsTiCC: the seed paper's settings and the Rubin model", "",
             "Written by `python scripts/plasticc_report.py` from `docs/plasticc.json` (do not edit by hand). Data: the "
             "PLAsTiCC training set (7,848 objects, 14 classes, `../shared/data/plasticc`). Every score is a grouped "
             "(one object in one fold), class-stratified cross-validation; each fold's model is class-balanced, exported as "
             "a dynamic-range quantized TFLite file and scored by the shipping runner (`fink_t2.runtime.inference.T2Model`). "
             "Flat log-loss: PLAsTiCC's metric, every class weighs the same; log-loss: plain, every object weighs the same. "
             "Reference: the issue's LightGBM on avocado-style GP features, same data and folds scheme.", "",
             "## The paper's settings", "",
             "| setting | folds | flat log-loss | log-loss | macro-F1 | accuracy | paper | reference (flat / macro-F1) |",
             "|---|---|---|---|---|---|---|---|", *_setting_rows(data), ""]
    for name, target in (("gr", TARGETS["gr"]), ("gr_copies3", TARGETS["gr"]), ("ugrizy_photoz", TARGETS["ugrizy_photoz"])):
        if name in runs:
            value = runs[name]["summary"]["full"]["all"]["flat_log_loss"]["mean"]
            lines.append(f"- `{name}`: target ≤ {target}: {_verdict(value, target)} (flat log-loss {value:.3f}); "
                         f"`{runs[name]['command']}`, epochs run per fold {runs[name]['epochs_run']}.")
    lines += ["", "## How t2 sees a long light curve", ""]
    study = [(n, r) for n, r in runs.items() if n.startswith("repr_")]
    lines += ["| view | folds | flat log-loss | macro-F1 | command |", "|---|---|---|---|---|"]
    for name, r in study:
        s = r["summary"]["full"]["all"]
        lines.append(f"| {name[5:]}: {r['view']['representation']}, {r['view']['sequence_length']} nodes, "
                     f"{r['view']['full_window_days']:g} d, end at {r['view']['anchor']} | {r['n_folds']} | "
                     f"{_ms(s['flat_log_loss'])} | {_ms(s['macro_f1'])} | `{r['command']}` |")
    lines += ["", "`grid`: 64 nodes evenly spaced over a window ending 100 days after the brightest detection "
              "(the whole curve's last point if earlier), measurements binned to the nearest node and interpolated "
              "between measured nodes per band. `epochs`: one node per measured night, the last 64, the night's time "
              "as a channel. The grid is chosen (lower flat log-loss, higher macro-F1 on the same folds); the same "
              "function (`fink_t2.core.flux_sequences.build_flux_sequences`) builds the Rubin alert views with the "
              "grid ending at the alert (365 days). A per-object 2-D GP (the paper's interpolation) was not tried: "
              "it costs 100-400 objects/s per core (the issue's figure for the reference's features), far from the "
              "10,000 alerts/s/core the stream needs.", ""]
    studies = [(n, r) for n, r in runs.items() if n.startswith("study_")]
    if studies and "gr" in runs:
        lines += ["Recipe studies (the first fold of the g/r split only, against the same fold of the g/r run):", "",
                  "| run | fold-0 flat log-loss | g/r run, fold 0 | command |", "|---|---|---|---|"]
        for name, r in studies:
            lines.append(f"| {name} | {r['fold_flat_log_loss'][0]:.3f} | {runs['gr']['fold_flat_log_loss'][0]:.3f} | "
                         f"`{r['command']}` |")
        lines.append("")
    if "gr" in runs:
        lines += ["Confusion matrix of the g/r setting (summed over folds; % of each true class):", "", *_confusion(runs["gr"]), ""]
    lines += ["## The Rubin model (`fink_t2/data/t2_lsst.tflite`)", "", *_rubin(data), ""]
    model, bench = data.get("lsst_model"), data.get("benchmark")
    if model and bench:
        lines += [f"File: {model['model_size']['tflite_bytes']:,} bytes (target ≤ {TARGETS['max_bytes']:,}: "
                  f"{_verdict(model['model_size']['tflite_bytes'], TARGETS['max_bytes'])}); micro-benchmark "
                  f"(CPU time of one thread, best of 3, {bench['alerts']} alerts, chunks of {bench['chunk_size']}): model "
                  f"{bench['model_alerts_per_s_per_core']:,.0f} alerts/s/core (target ≥ {TARGETS['min_alerts_per_s']:,}: "
                  f"{'met' if bench['model_alerts_per_s_per_core'] >= TARGETS['min_alerts_per_s'] else 'missed'}), "
                  f"preprocessing {bench['preprocessing_alerts_per_s']:,.0f} alerts/s, both "
                  f"{bench['end_to_end_alerts_per_s']:,.0f} alerts/s, measured while the machine's load average was "
                  f"{bench['load_average_1min']:.1f} on {bench['cpu_count']} cores (shared with other jobs: a floor, not the "
                  f"figure of an idle core). Made by `{model['command']}`.", ""]
    lines += ["## Compression table (g/r paper-setting model)", "", *_compression(data), ""]
    lines += ["## What was cut for time, and what is left", "", *[f"- {item}" for item in data.get("cut", [])], ""]
    return "\n".join(lines)
