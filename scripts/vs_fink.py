"""t2 against Fink's own SN Ia classifiers on the cross-validation's held-out alert views → docs/vs_fink.{json,md,png}.

    build/fink-venv/bin/python scripts/vs_fink.py     # in Fink's production stack (numpy < 2, torch, SuperNNova)
    python scripts/vs_fink.py --page                  # docs/vs_fink.md and .png again from docs/vs_fink.json

The venv is the one ``.ci/run`` builds for Fink's production stack (its ``FINK_INSTALL`` and ``FINK_SNN`` lines);
fink-science's SuperNNova needs numpy < 2 and torch. The views are the fresh folds' held-out alert views
(``scripts/fresh_folds.py``): every BTS object once, scored by the fold model that never saw it (t2's
probabilities and decisions as saved by the fold run; its speed measured here on fold 0's file). Fink's classifiers
are fink-science's ZTF modules called with the arguments fink-broker's ``ztf/science.py`` passes:

* SuperNNova ``snn_ia(candid, cjd, cfid, cmagpsf, csigmapsf, roid, cdsxmatch, jdstarthist, "snn_snia_vs_nonia")``;
* Early SN Ia ``rfscore_sigmoid_full(cjd, cfid, cmagpsf, csigmapsf, cdsxmatch, ndethist)``;

with ``roid`` 0 and ``cdsxmatch`` "Unknown" (the views are all extragalactic transients), magnitude errors from the
BTS light curves. The Early SN Ia model file is a scikit-learn 1.0.2 pickle that scikit-learn >= 1.3 cannot load
(Fink's Rubin pin is 1.5.2), so this venv gets scikit-learn 1.2.2 (the newest that loads it on Python 3.11) and
actsnfink (not on PyPI) from its repository; see docs/vs_fink.md for the commands. Per alert-age bucket, every object weighing the same: coverage (share of the bucket's views the
module's own cuts let through), ROC-AUC of P(SN Ia) for SN Ia against the rest, binary log-loss beside that of the
constant SN Ia share, purity and efficiency at Fink's 0.5 threshold; and views/s.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from fresh_folds import bts_table, load_folds, shipped_recipe

from fink_t2.core.cuts import STATUS_OK
from fink_t2.model.datasets import CLASS_NAMES
from fink_t2.model.views import alert_views, bucket_names

DOCS = ROOT / "docs"
CHUNK = 2_000  # views per call, about one Spark Arrow batch
SNN_MODEL = "snn_snia_vs_nonia"
#: the actsnfink snapshot installed into the venv (not on PyPI; pip records no commit for a local directory)
ACTSNFINK_COMMIT = "f424ab1fc5024a49364d41090d1c3c2b8cb733cd"


def ragged(values, offsets) -> pd.Series:
    return pd.Series([values[a:b] for a, b in zip(offsets[:-1], offsets[1:])])


def fink_columns(views, sigma) -> dict:
    n = len(views)
    return {"candid": pd.Series(np.arange(n, dtype=np.int64)), "cjd": ragged(views.jd, views.offsets),
            "cfid": ragged(views.fid.astype(np.int64), views.offsets), "cmagpsf": ragged(views.mag, views.offsets),
            "csigmapsf": ragged(sigma, views.offsets), "roid": pd.Series(np.zeros(n, dtype=np.int64)),
            "cdsxmatch": pd.Series(["Unknown"] * n), "jdstarthist": pd.Series(views.jdstarthist),
            "ndethist": pd.Series(views.ndethist.astype(np.int64))}


def run_fink(c: dict) -> dict:
    """P(SN Ia), coverage mask and CPU seconds of each Fink module, in CHUNK-view calls."""
    import torch
    from fink_science.ztf.random_forest_snia import processor as rf
    from fink_science.ztf.snn import processor as snn

    torch.set_num_threads(1)  # one core per module, as t2's LiteRT thread: views/s comparable per core

    calls = {
        "SuperNNova": (lambda s: snn.snn_ia.func(s["candid"], s["cjd"], s["cfid"], s["cmagpsf"], s["csigmapsf"],
                                                 s["roid"], s["cdsxmatch"], s["jdstarthist"], pd.Series([SNN_MODEL])),
                       lambda s: snn.apply_selection_cuts_ztf(s["cmagpsf"], s["cdsxmatch"], s["cjd"], s["jdstarthist"],
                                                              s["roid"])),
        "Early SN Ia": (lambda s: rf.rfscore_sigmoid_full.func(s["cjd"], s["cfid"], s["cmagpsf"], s["csigmapsf"],
                                                               s["cdsxmatch"], s["ndethist"]),
                        lambda s: rf.apply_selection_cuts_ztf(s["cmagpsf"], s["ndethist"], s["cdsxmatch"])),
    }
    n = len(c["candid"])
    out = {}
    for name, (score, cuts) in calls.items():
        p, mask, seconds = np.zeros(n), np.zeros(n, bool), 0.0
        for start in range(0, n, CHUNK):
            part = {k: v.iloc[start:start + CHUNK].reset_index(drop=True) for k, v in c.items()}
            t0 = time.process_time()
            p[start:start + CHUNK] = score(part).to_numpy()
            seconds += time.process_time() - t0
            mask[start:start + CHUNK] = cuts(part).to_numpy(bool)
        if name == "Early SN Ia":  # it writes 0 where its sigmoid fit finds no rise in both bands: not scored
            mask &= p > 0
        out[name] = {"p_ia": p, "scored": mask, "cpu_s": seconds}
        print(f"{name}: {mask.mean():.1%} of the views scored, {n / seconds:,.0f} views/s", flush=True)
    return out


def t2_speed(fold: dict, views) -> float:
    """Views/s (CPU time) of fold 0's file through the shipping core, one LiteRT/tf.lite thread."""
    from fink_t2.model.evaluate import score_views
    from fink_t2.runtime.inference import T2Model

    model = T2Model(content=fold["path"].read_bytes(), contract=fold["meta"]["contract"], num_threads=1)
    score_views(model, views.select(np.arange(min(200, len(views)))))  # warm-up
    t0 = time.process_time()
    score_views(model, views)
    return len(views) / (time.process_time() - t0)


def binary_metrics(is_ia, p, weight, decision, prior: float) -> dict:
    from sklearn.metrics import log_loss, roc_auc_score

    if len(is_ia) == 0:
        return {"n_views": 0}
    both = 0 < is_ia.sum() < len(is_ia)
    hit = lambda m: float(np.sum(weight[m]))
    chosen = decision.astype(bool)
    return {"n_views": int(len(is_ia)),
            "auc": float(roc_auc_score(is_ia, p, sample_weight=weight)) if both else None,
            "log_loss": float(log_loss(is_ia, np.clip(p, 1e-7, 1 - 1e-7), sample_weight=weight, labels=[0, 1])),
            "prior_log_loss": float(log_loss(is_ia, np.full(len(p), prior), sample_weight=weight, labels=[0, 1])),
            "purity": hit(chosen & is_ia) / hit(chosen) if chosen.any() else None,
            "efficiency": hit(chosen & is_ia) / hit(is_ia) if is_ia.any() else None}


def compare(views, t2: dict, fink: dict, prior: float) -> dict:
    bucket = views.bucket()
    is_ia = views.label == "SN Ia"
    t2_ok = t2["status"] == STATUS_OK
    p_t2 = np.where(t2_ok, t2["proba"][:, CLASS_NAMES.index("SN Ia")], 0.0)
    rows = {"t2 (t2_class = SN Ia)": (t2_ok, p_t2, t2["label"] == "SN Ia"),
            "t2 (P(SN Ia) > 0.5)": (t2_ok, p_t2, p_t2 > 0.5)}
    for name, f in fink.items():
        rows[name] = (f["scored"], f["p_ia"], f["p_ia"] > 0.5)
        rows[f"t2 on {name}'s views"] = (f["scored"] & t2_ok, p_t2, t2["label"] == "SN Ia")
    out = {}
    for b, name in enumerate(bucket_names()):
        in_b = bucket == b
        out[name] = {}
        for row, (scored, p, decision) in rows.items():
            m = in_b & scored
            objects = pd.Series(views.object_id[m])
            weight = 1.0 / objects.map(objects.value_counts()).to_numpy(np.float64)
            out[name][row] = {"coverage": float(m.sum() / max(1, in_b.sum())),
                              **binary_metrics(is_ia[m], p[m], weight, decision[m], prior)}
    return out


def write_page(result: dict) -> None:
    from vs_fink_page import markdown, plot

    (DOCS / "vs_fink.md").write_text(markdown(result))
    plot(result, DOCS / "vs_fink.png")
    print("wrote docs/vs_fink.md, vs_fink.png")


def main(argv=None) -> dict:
    if "--page" in (sys.argv[1:] if argv is None else argv):
        result = json.loads((DOCS / "vs_fink.json").read_text())
        write_page(result)
        return result
    from importlib.metadata import PackageNotFoundError, version

    recipe, metrics = shipped_recipe()
    folds = load_folds()
    table = bts_table(recipe, metrics)
    test_ids = np.concatenate([f["meta"]["test_ids"] for f in folds])
    held = table[table["object_id"].isin(test_ids)]
    views = alert_views(held)
    sigma = alert_views(held.assign(mag=held["magerr"])).mag  # the same points, magnitude errors in place of mags
    t2 = {k: [] for k in ("proba", "status", "label", "object_id")}
    for fold in folds:
        for k in t2:
            t2[k].append(fold["pred"][k])
    t2 = {k: np.concatenate(v) for k, v in t2.items()}
    saved = pd.DataFrame({"object": t2["object_id"], "age": np.round(np.concatenate([f["pred"]["age"] for f in folds]), 6)})
    now = pd.DataFrame({"object": views.object_id.astype(str), "age": np.round(views.age, 6)})
    index = now.merge(saved.reset_index(), on=["object", "age"], how="left")["index"].to_numpy()
    if np.isnan(index.astype(float)).any() or len(set(index)) != len(index):
        raise SystemExit("the saved fold predictions do not match these views (data changed?)")
    t2 = {k: v[index.astype(int)] for k, v in t2.items()}
    fink = run_fink(fink_columns(views, sigma))
    prior = float(np.mean(table.groupby("object_id")["label"].first() == "SN Ia"))
    fold0 = alert_views(table[table["object_id"].isin(folds[0]["meta"]["test_ids"])])
    speed = {"t2": t2_speed(folds[0], fold0), **{k: len(views) / v["cpu_s"] for k, v in fink.items()}}
    versions = {}
    for name in ("numpy", "pandas", "torch", "supernnova", "fink-science", "actsnfink", "scikit-learn", "ai-edge-litert"):
        try:
            versions[name] = version(name)
        except PackageNotFoundError:
            versions[name] = None
    result = {"command": "build/fink-venv/bin/python scripts/vs_fink.py", "views": int(len(views)),
              "objects": int(len(set(views.object_id))), "fold_seed": folds[0]["meta"]["fold_seed"],
              "sn_ia_share": prior, "snn_model": SNN_MODEL, "versions": versions,
              "actsnfink_commit": ACTSNFINK_COMMIT,
              "views_per_s_cpu": speed, "buckets": compare(views, t2, fink, prior)}
    (DOCS / "vs_fink.json").write_text(json.dumps(result, indent=1) + "\n")
    write_page(result)
    return result


if __name__ == "__main__":
    main()
