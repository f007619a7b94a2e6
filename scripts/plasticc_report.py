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
    for _ in range(3):
        start = time.perf_counter()
        runner.predict(x)
        best = max(best, len(x) / (time.perf_counter() - start))
    start = time.perf_counter()
    view_inputs(lc, alerts, spec)  # cutting the 365-day views out of the table, then build_flux_sequences
    prep = n_alerts / (time.perf_counter() - start)
    return {"alerts": n_alerts, "model_alerts_per_s_per_core": best, "preprocessing_alerts_per_s": prep,
            "end_to_end_alerts_per_s": 1.0 / (1.0 / best + 1.0 / prep), "bytes": path.stat().st_size,
            "threads": 1, "chunk_size": runner.chunk_size}


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
        keep[name]["tflite_bytes"] = run["folds"][0]["tflite_bytes"]
    lsst = json.loads(LSST_METRICS.read_text()) if LSST_METRICS.is_file() else None
    return {"runs": keep, "lsst_model": lsst and {k: lsst[k] for k in ("model", "command", "model_size", "guard",
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
