"""The scores of docs/rubin.json: per alert-age bucket and module, coverage, ROC-AUC, purity and efficiency.

Each module gives, per alert, whether it classified the alert (``covered``), a score per task (SN vs rest,
SN Ia vs rest; ``None`` where the module has no score for the task) and its production selection (the
threshold Fink's filters apply, :data:`THRESHOLDS`). ROC-AUC is computed twice: over every alert of the bucket,
an alert the module does not classify scoring below any classified one (what a user of the stream gets), and
over the alerts the module classifies. Purity and efficiency count every alert of the bucket (an unclassified
alert is not selected).
"""

from __future__ import annotations

import numpy as np

#: PLAsTiCC classes counted as supernovae: the five of ELAsTiCC's "SN-like" broad class (the class CATS and
#: SuperNNova's SN_vs_other were trained on); SLSN-I is "Long" in that taxonomy, so it is not SN here
SN_CLASSES = ("SN Ia", "SN II", "SN Ibc", "SNIa-91bg", "SNIax")
#: normal SN Ia only (PLAsTiCC code 90): 91bg-like and Iax are other classes in PLAsTiCC and ELAsTiCC alike
IA_CLASSES = ("SN Ia",)
#: SuperNNova SN_vs_other fed the y band as its model names it, ``Y`` (a diagnostic, not what Fink runs)
SNN_Y = "SuperNNova SN_vs_other, y named Y (diagnostic)"
#: each module's production selection, as Fink's Rubin filters (fink-filters ``fink_filters/rubin/livestream``) apply it
THRESHOLDS = {
    "t2": "decision (argmax of the network's output) among the SN classes / equal to SN Ia; no threshold",
    "SuperNNova SN_vs_other": "snnSnVsOthers_score >= 0.7 (filter_most_likely_sn)",
    SNN_Y: "as SuperNNova SN_vs_other",
    "SuperNNova elasticc_ia": "score > 0.5 (not run in production; fink-science's doctest threshold)",
    "CATS": "cats_class == SN-like and cats_score >= 0.9 (filter_most_likely_sn)",
    "Early SN Ia": "earlySNIa_score > 0.76, or > 0.5 with log10(max psfFlux / max(10 nJy, min psfFlux)) > 0.5 "
                   "(filter_early_snia_candidate; the diaObject's per-band psfFluxMin/Max taken over the alert's "
                   "detections)",
}


def roc_auc(y: np.ndarray, score: np.ndarray):
    """ROC-AUC (ties count half); None when a class is missing."""
    from sklearn.metrics import roc_auc_score

    if len(y) == 0 or y.all() or not y.any():
        return None
    return float(roc_auc_score(y, score))


def binary(y: np.ndarray, score, selected, covered: np.ndarray) -> dict:
    """Scores of one module on one task over one bucket's alerts (all None for a task the module has no score for)."""
    if score is None:
        return dict.fromkeys(("n_selected", "n_true_selected", "purity", "efficiency", "auc_all", "auc_classified"))
    out = {"n_selected": int(selected.sum()), "n_true_selected": int((selected & y).sum())}
    out["purity"] = out["n_true_selected"] / out["n_selected"] if out["n_selected"] else None
    out["efficiency"] = out["n_true_selected"] / int(y.sum()) if y.any() else None
    floor = np.nanmin(score[covered]) - 1.0 if covered.any() else 0.0
    out["auc_all"] = roc_auc(y, np.where(covered, score, floor))
    out["auc_classified"] = roc_auc(y[covered], score[covered])
    return out


def log_flux_ratio(flux) -> np.ndarray:
    """fink-filters' Early SN Ia flux ratio of each alert, from its detections' psfFlux (nJy): log10 of the
    largest over the smallest (floored at 10 nJy), as its diaObject's per-band psfFluxMax / psfFluxMin give it."""
    values = [np.array([np.nan if v is None else v for v in (f or [])], dtype=np.float64) for f in flux]
    values = [f[np.isfinite(f)] for f in values]
    low = np.array([max(10.0, f.min()) if len(f) else np.nan for f in values])
    high = np.array([f.max() if len(f) and f.max() > 0 else 1e-10 for f in values])
    return np.log10(high / low)


def module_outputs(t2: dict, fink: dict, class_names, flux_ratio=None) -> dict:
    """name → {covered, sn, sn_selected, ia, ia_selected} arrays, from t2's classification and Fink's scores
    (``flux_ratio``: :func:`log_flux_ratio` of each alert, for Early SN Ia's second arm)."""
    sn_index = [class_names.index(c) for c in SN_CLASSES]
    out = {}
    for name, result in t2.items():
        ok = result["status"] == "ok"
        proba = np.where(ok[:, None], result["proba"], np.nan)
        decision = np.array([d if d is not None else "" for d in result["decision"]], dtype=object)
        out[name] = {"covered": ok, "sn": proba[:, sn_index].sum(axis=1), "sn_selected": ok & np.isin(decision, SN_CLASSES),
                     "ia": proba[:, class_names.index("SN Ia")], "ia_selected": ok & (decision == "SN Ia")}
    for name in ("SuperNNova SN_vs_other", SNN_Y):
        if name in fink:
            s = fink[name]
            out[name] = {"covered": np.isfinite(s), "sn": s, "sn_selected": s >= 0.7, "ia": None, "ia_selected": None}
    if "SuperNNova elasticc_ia" in fink:
        s = fink["SuperNNova elasticc_ia"]
        out["SuperNNova elasticc_ia"] = {"covered": np.isfinite(s), "sn": None, "sn_selected": None,
                                         "ia": s, "ia_selected": s > 0.5}
    if "CATS" in fink:
        p = fink["CATS"]
        covered = p.max(axis=1) > 0
        out["CATS"] = {"covered": covered, "sn": p[:, 0], "ia": None, "ia_selected": None,
                       "sn_selected": covered & (p.argmax(axis=1) == 0) & (p.max(axis=1) >= 0.9)}
    if "Early SN Ia" in fink:
        s = fink["Early SN Ia"]
        out["Early SN Ia"] = {"covered": s >= 0, "sn": None, "sn_selected": None,
                              "ia": s, "ia_selected": (s > 0.76) | ((s > 0.5) & (np.asarray(flux_ratio) > 0.5))}
    return out


def bucket_scores(labels: np.ndarray, buckets: np.ndarray, names, outputs: dict) -> dict:
    """bucket → {n, n_sn, n_ia, modules: name → {coverage, sn, ia}, common}: see the module doc.

    ``common``: SN-vs-rest ROC-AUC of each module with an SN score over the alerts that all of them classify.
    """
    is_sn, is_ia = np.isin(labels, SN_CLASSES), np.isin(labels, IA_CLASSES)
    sn_modules = [m for m, o in outputs.items() if o["sn"] is not None]
    result = {}
    for b in names:
        m = buckets == b
        entry = {"n": int(m.sum()), "n_sn": int(is_sn[m].sum()), "n_ia": int(is_ia[m].sum()), "modules": {}}
        for name, o in outputs.items():
            cov = o["covered"][m]
            entry["modules"][name] = {
                "coverage": float(cov.mean()) if m.any() else None,
                **{task: binary(truth[m], None if o[task] is None else o[task][m],
                                None if o[task] is None else o[task + "_selected"][m], cov)
                   for task, truth in (("sn", is_sn), ("ia", is_ia))}}
        common = np.logical_and.reduce([outputs[s]["covered"][m] for s in sn_modules]) if sn_modules else np.zeros(0, bool)
        entry["common"] = {"n": int(common.sum()),
                           "sn_auc": {s: roc_auc(is_sn[m][common], outputs[s]["sn"][m][common]) for s in sn_modules}}
        result[b] = entry
    return result


def targets(buckets: dict, throughput: dict, t2_name: str, rivals=("SuperNNova SN_vs_other", "CATS")) -> dict:
    """The issue's targets, met or missed, from the figures of the JSON (never tuned to)."""
    def above(key):
        rows = {}
        for b, entry in buckets.items():
            if key == "common":
                aucs = entry["common"]["sn_auc"]
                mine, theirs = aucs.get(t2_name), {r: aucs.get(r) for r in rivals if r in aucs}
            else:
                mods = entry["modules"]
                mine = mods[t2_name]["sn"][key]
                theirs = {r: mods[r]["sn"][key] for r in rivals if r in mods}
            rows[b] = bool(mine is not None and theirs and all(v is None or mine > v for v in theirs.values()))
        return {"met": all(rows.values()), "by_bucket": rows}
    realistic = throughput.get("t2 realistic", {}).get("alerts_per_wall_s") or 0
    every = throughput.get("t2 every alert classified", {}).get("alerts_per_wall_s") or 0
    return {"sn_auc_above_snn_and_cats_all_alerts": above("auc_all"),
            "sn_auc_above_snn_and_cats_classified": above("auc_classified"),
            "sn_auc_above_snn_and_cats_common_alerts": above("common"),
            "throughput_realistic_10000": {"met": realistic >= 10_000, "value": realistic},
            "throughput_every_alert_5000": {"met": every >= 5_000, "value": every}}


#: the targets judged on each fold's alerts (the throughput ones are one measurement, over every fold's alerts)
AUC_TARGETS = ("sn_auc_above_snn_and_cats_all_alerts", "sn_auc_above_snn_and_cats_classified",
               "sn_auc_above_snn_and_cats_common_alerts")


def concat_results(results: list[dict]) -> dict:
    """t2's results on several alert tables (one per fold) as one, in the tables' order."""
    return {"status": np.concatenate([r["status"] for r in results]),
            "proba": np.concatenate([r["proba"] for r in results]),
            "decision": [d for r in results for d in r["decision"]], "class_names": results[0]["class_names"]}


def subset(outputs: dict, mask: np.ndarray) -> dict:
    """:func:`module_outputs` restricted to the alerts of ``mask``."""
    return {name: {k: None if v is None else v[mask] for k, v in o.items()} for name, o in outputs.items()}


def pooled_views(folds: list[dict], n_folds: int, seed: int) -> dict:
    """What the folds' held-out views add up to (objects, alerts, classes, packing check)."""
    views = [f["views"] for f in folds]
    classes: dict = {}
    for v in views:
        for c, n in v["classes"].items():
            classes[c] = classes.get(c, 0) + n
    gaps = [v["packing_check"]["max_abs_probability_difference"] for v in views]
    return {"n_folds": n_folds, "seed": seed, "folds": [v["fold"] for v in views],
            **{k: sum(v[k] for v in views) for k in ("heldout_objects", "objects", "alerts")},
            "classes": dict(sorted(classes.items())),
            "packing_check": {"alerts_compared": sum(v["packing_check"]["alerts_compared"] for v in views),
                              "max_abs_probability_difference": max((g for g in gaps if g is not None), default=None)}}


def fold_tally(folds: list[dict]) -> dict:
    """Each AUC target: in how many folds it is met, and the buckets each fold misses."""
    return {key: {"met_in": sum(f["targets"][key]["met"] for f in folds), "folds": len(folds),
                  "buckets_missed": {str(f["fold"]): [b for b, ok in f["targets"][key]["by_bucket"].items() if not ok]
                                     for f in folds}}
            for key in AUC_TARGETS}
