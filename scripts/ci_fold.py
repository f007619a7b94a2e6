"""One fold of the shipped recipe's cross-validation on a small fixed subset, for a test that can fail.

    python scripts/ci_fold.py          # → docs/ci_fold.json (the stored value tests/test_quality_docs.py recomputes)

Every ``EVERY``-th BTS object (sorted by id), the first of the recipe's 5 grouped, stratified folds, the shipped
recipe with ``EPOCHS`` epochs: trained, quantized and scored exactly as one fold of ``fink-t2 train --cv`` (through
:func:`fresh_folds.train_fold`). Views, cuts, preprocessing, training, calibration, quantization and the metrics
all move these numbers, so a change to any of them shows up as a failed test (in under a minute).
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from fresh_folds import shipped_recipe, train_fold

OUTPUT = ROOT / "docs" / "ci_fold.json"
EVERY = 10
EPOCHS = 15
FOLDS = 5


def compute(data_dir=None) -> dict:
    import numpy as np

    from fink_t2.model.datasets import cv_folds, load_bts, object_table
    from fink_t2.model.evaluate import bucket_metrics, class_prior

    recipe, _ = shipped_recipe()
    recipe = dataclasses.replace(recipe, epochs=EPOCHS)
    bts = load_bts(data_dir)
    table = bts[bts["object_id"].isin(np.sort(bts["object_id"].unique())[::EVERY])]
    objects = object_table(table)
    train_ids, test_ids = cv_folds(objects, FOLDS, recipe.seed)[0]
    _, _, info, views, scores = train_fold(table, train_ids, test_ids, recipe)
    prior = class_prior(objects.set_index("object_id").loc[train_ids, "label"])
    return {"command": "python scripts/ci_fold.py", "subset": f"every {EVERY}th BTS object sorted by objectId",
            "objects": int(len(objects)), "fold": f"1 of {FOLDS} (seed {recipe.seed})",
            "recipe": dataclasses.asdict(recipe), "epochs_run": info["epochs_run"],
            "buckets": json.loads(json.dumps(bucket_metrics(views, scores, prior)))}


def main() -> dict:
    result = compute()
    OUTPUT.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {OUTPUT}: macro-F1 " + ", ".join(f"{b} {r.get('macro_f1', float('nan')):.3f}"
                                                 for b, r in result["buckets"].items()))
    return result


if __name__ == "__main__":
    main()
