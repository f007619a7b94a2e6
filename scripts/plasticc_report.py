"""t2 on PLAsTiCC → docs/plasticc.json and docs/plasticc.md (the seed paper's settings, the Rubin model,
the compression table), from the runs of ``fink-t2 train --dataset plasticc`` and
``python -m fink_t2.model.plasticc_compress``.

    python scripts/plasticc_report.py            # collect build/plasticc/runs/*.json + benchmark → docs/
    python scripts/plasticc_report.py --render   # docs/plasticc.md again from docs/plasticc.json only

Every figure in the page comes from docs/plasticc.json (``tests/test_plasticc.py`` checks the page is
its rendering, and the Rubin rows against fink_t2/data/t2_lsst_metrics.json).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fink_t2.model.plasticc_report_text import render

RUNS = ROOT / "build" / "plasticc" / "runs"
DOC_JSON = ROOT / "docs" / "plasticc.json"
DOC_MD = ROOT / "docs" / "plasticc.md"
LSST_METRICS = ROOT / "fink_t2" / "data" / "t2_lsst_metrics.json"


def benchmark(n_alerts: int = 2000) -> dict:
    """Rubin model, one thread: preprocessing + inference of the last-detection alerts of the first objects."""
    from fink_t2.core.contract import read_contract
    from fink_t2.core.spec import spec_from_contract
    from fink_t2.model.plasticc import load_plasticc
    from fink_t2.model.plasticc_alerts import detection_table, view_inputs
    from fink_t2.runtime.inference import T2Model

    path = ROOT / "fink_t2" / "data" / "t2_lsst.tflite"
    spec = spec_from_contract(read_contract(path))
    lc, _ = load_plasticc()
    table = detection_table(lc)
    alerts = table.iloc[np.random.default_rng(0).choice(len(table), n_alerts, replace=False)].sort_values("object_id")
    x = view_inputs(lc, alerts, spec)
    runner = T2Model(str(path), num_threads=1)
    runner.predict(x[:64])
    best = 0.0
    for _ in range(3):  # CPU time of this process (one interpreter thread): alerts/s per core, robust to a shared machine
        start = time.process_time()
        runner.predict(x)
        best = max(best, len(x) / (time.process_time() - start))
    start = time.process_time()
    view_inputs(lc, alerts, spec)  # cutting the 365-day views out of the table, then build_flux_sequences
    prep = n_alerts / (time.process_time() - start)
    return {"alerts": n_alerts, "model_alerts_per_s_per_core": best, "preprocessing_alerts_per_s": prep,
            "end_to_end_alerts_per_s": 1.0 / (1.0 / best + 1.0 / prep), "bytes": path.stat().st_size,
            "threads": 1, "chunk_size": runner.chunk_size, "load_average_1min": os.getloadavg()[0],
            "cpu_count": os.cpu_count()}


def cut_list(runs: dict) -> list[str]:
    """What this session's runs left out (2 shared cores, one evening), said from the runs themselves."""
    def folds(name):
        return f"{runs[name]['n_folds']} folds, at most {runs[name]['recipe']['epochs']} epochs" if name in runs else "not run"
    out = [f"Representation study: {folds('repr_grid')} per view (a ranking, not final scores); no 2-D GP view.",
           f"g/r paper setting: {folds('gr')} (early stopping), no training augmentation; "
           + (f"with 3 resampled copies of each training object: {folds('gr_copies3')} (second row). The compression "
              "table is built on the first." if "gr_copies3" in runs else
              "the resampled-copies study above (one fold) says augmentation helps: the next run to make."),
           f"ugrizy + photo-z: {folds('ugrizy_photoz')}, not 5.",
           "ugrizy without redshift on full curves (reference 0.622) was not run as a full-curve setting; the Rubin "
           "model's score at each object's last detection stands beside it.",
           f"Rubin model: {folds('rubin')}, one training view per object and alert-age bucket.",
           "Boone-2019 redshift augmentation (fink_t2/model/augment.py) works on ZTF magnitudes of BTS objects; it was "
           "not ported to PLAsTiCC fluxes and redshifts.",
           "No probability calibration beyond a temperature folded into the last layer (fitted on the validation "
           "objects for the flat log-loss)."]
    if "compression" in runs:
        out.append(f"Compression table: CV quality on {runs['compression']['n_folds_of_5']} of the 5 folds, tfmot "
                   f"fine-tuning {runs['compression']['fine_tune_epochs']} epochs.")
    else:
        out.append("Compression table: not run (python -m fink_t2.model.plasticc_compress).")
    return out


def collect() -> dict:
    runs = {p.stem: json.loads(p.read_text()) for p in sorted(RUNS.glob("*.json"))}
    keep = {}
    for name, run in runs.items():
        if name == "compression":
            keep[name] = run
            continue
        if name.startswith("timing"):
            continue
        keep[name] = {k: run[k] for k in ("setting", "name", "view", "command", "n_folds", "recipe", "summary",
                                          "class_names", "seconds", "created")}
        keep[name]["epochs_run"] = [f["training"]["epochs_run"] for f in run["folds"]]
        first_set = next(iter(run["folds"][0]["sets"]))
        keep[name]["fold_flat_log_loss"] = [f["sets"][first_set]["all"]["flat_log_loss"] for f in run["folds"]]
        keep[name]["tflite_bytes"] = run["folds"][0]["tflite_bytes"]
    lsst = json.loads(LSST_METRICS.read_text()) if LSST_METRICS.is_file() else None
    return {"runs": keep, "cut": cut_list(keep), "lsst_model": lsst and {k: lsst[k] for k in ("model", "command", "model_size", "guard",
                                                                       "created", "recipe", "view")},
            "benchmark": benchmark() if lsst else None}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render", action="store_true", help="only render docs/plasticc.md from docs/plasticc.json")
    args = parser.parse_args(argv)
    data = json.loads(DOC_JSON.read_text()) if args.render else collect()
    if not args.render:
        DOC_JSON.write_text(json.dumps(data, indent=1) + "\n")
    DOC_MD.write_text(render(data))
    print(f"wrote {DOC_MD}")


if __name__ == "__main__":
    main()
