"""``fink-t2 train --dataset plasticc``: t2 on PLAsTiCC, cross-validated, in any set of bands.

    fink-t2 train --dataset plasticc --setting gr --cv 5            # the seed paper's g/r, no-redshift setting
    fink-t2 train --dataset plasticc --setting ugrizy_photoz --cv 5 # ugrizy + host photo-z
    fink-t2 train --dataset plasticc --setting rubin --cv 5 --ship  # → fink_t2/data/t2_lsst.tflite + metrics

Each run writes ``build/plasticc/runs/<name>.json`` (the command, recipe, view and every fold's scores);
``scripts/plasticc_report.py`` turns those into ``docs/plasticc.md``. Inputs are cached under
``build/plasticc/cache`` so that folds, settings and reruns reuse them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import sys
import time
from datetime import datetime, timezone

import numpy as np

from fink_t2.core.spec import LSST_BANDS, SequenceSpec
from fink_t2.model.plasticc import CLASS_NAMES, PHOTOZ_CHANNELS, full_curve_inputs, load_plasticc, resampled_curves
from fink_t2.model.plasticc_train import PlasticcRecipe, crossval, recipe_fields
from fink_t2.paths import REPO_ROOT

BUILD = REPO_ROOT / "build" / "plasticc"
#: how t2 sees a light curve, chosen by the cross-validation of docs/plasticc.md ("representation" study)
VIEW = {"representation": "grid", "sequence_length": 64, "full_window_days": 300.0, "anchor": "peak",
        "train_copies": 0}
#: setting → (bands, extra per-object channels, what is judged)
SETTINGS = {
    "gr": (("g", "r"), (), "full"),
    "ugrizy": (LSST_BANDS, (), "full"),
    "ugrizy_photoz": (LSST_BANDS, PHOTOZ_CHANNELS, "full"),
    "rubin": (LSST_BANDS, (), "alerts"),
}


def spec_of(setting: str, view: dict) -> SequenceSpec:
    bands, extra, kind = SETTINGS[setting]
    window = view["full_window_days"] if kind == "full" else view.get("alert_window_days", 365.0)
    return SequenceSpec(bands=tuple(bands), band_codes=tuple(LSST_BANDS.index(b) for b in bands),
                        window_days=float(window), sequence_length=int(view["sequence_length"]),
                        representation=view["representation"], extra_channels=tuple(extra))


def cached(name: str, make):
    """``make()``'s arrays, kept in ``build/plasticc/cache/<name>.npz``."""
    path = BUILD / "cache" / f"{name}.npz"
    if path.is_file():
        with np.load(path, allow_pickle=False) as data:
            return {k: data[k] for k in data.files}
    arrays = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, **arrays)
    return arrays


def full_curve_data(setting: str, view: dict, data_dir=None):
    """(objects, inputs(ids, part)) of full light curves, for :func:`fink_t2.model.plasticc_train.crossval`."""
    lc, objects = load_plasticc(data_dir)
    spec = spec_of(setting, view)
    key = f"full_{setting}_{view['representation']}_{spec.sequence_length}_{spec.window_days:g}_{view['anchor']}"
    arrays = cached(key, lambda: dict(zip(("x", "y"), full_curve_inputs(lc, objects, spec, view["anchor"]))))
    position = {o: i for i, o in enumerate(objects["object_id"])}
    copies = int(view.get("train_copies", 0))
    if copies:  # re-observed copies of every object, for training only (fink_t2.model.plasticc.resampled_curves)
        def make_copies():
            xs = []
            for _, part in resampled_curves(lc, copies).groupby("copy", sort=True):
                kept = objects[objects["object_id"].isin(part["object_id"])]
                xs.append((full_curve_inputs(part, kept, spec, view["anchor"])[0], kept["object_id"].to_numpy()))
            return {"x": np.concatenate([x for x, _ in xs]), "object_id": np.concatenate([i for _, i in xs])}
        augmented = cached(f"{key}_copies{copies}", make_copies)
        label = dict(zip(objects["object_id"], objects["y"]))

    def inputs(ids, part):
        index = np.array([position[o] for o in ids])
        x, y = arrays["x"][index], arrays["y"][index]
        if part == "test":
            return {"full": (x, y, None)}
        if copies and part == "train_augmented":
            mask = np.isin(augmented["object_id"], ids)
            extra_y = np.array([label[o] for o in augmented["object_id"][mask]], dtype=np.int64)
            return np.concatenate([x, augmented["x"][mask]]), np.concatenate([y, extra_y])
        return x, y
    return objects, inputs, spec


def run(setting: str, name: str | None = None, n_folds: int = 5, view: dict | None = None,
        recipe: PlasticcRecipe | None = None, data_dir=None, command: str | None = None, progress=True,
        max_folds: int | None = None) -> dict:
    """Cross-validate ``setting`` and write ``build/plasticc/runs/<name>.json``."""
    view, recipe = {**VIEW, **(view or {})}, recipe or PlasticcRecipe()
    start = time.time()
    if SETTINGS[setting][2] == "full":
        objects, inputs, spec = full_curve_data(setting, view, data_dir)
    else:
        from fink_t2.model.plasticc_alerts import alert_data

        objects, inputs, spec = alert_data(spec_of(setting, view), data_dir, recipe.seed)
    result = crossval(objects, inputs, spec, CLASS_NAMES, recipe, n_folds, progress, max_folds)
    result.update({"setting": setting, "name": name or setting, "view": view, "spec": spec.contract_fields(),
                   "command": command, "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
                   "seconds": round(time.time() - start, 1), "class_names": list(CLASS_NAMES)})
    out = BUILD / "runs" / f"{result['name']}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    if progress:
        full = result["summary"][next(iter(result["summary"]))]["all"]
        print(f"{result['name']}: flat log-loss {full['flat_log_loss']['mean']:.3f} ± {full['flat_log_loss']['std']:.3f}, "
              f"macro-F1 {full['macro_f1']['mean']:.3f} → {out}")
    return result


def main(argv=None) -> dict:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", choices=["plasticc"], default="plasticc")
    parser.add_argument("--setting", choices=sorted(SETTINGS), default="gr")
    parser.add_argument("--name", default=None, help="run name (default: the setting)")
    parser.add_argument("--cv", type=int, default=5, help="folds of the cross-validation")
    parser.add_argument("--data-dir", default=None, help="shared data sets (default: $FINK_T2_DATA, else ../shared/data)")
    parser.add_argument("--max-folds", type=int, default=None, help="run only the first folds (quick studies)")
    parser.add_argument("--ship", action="store_true", help="then train on every object and write the model file")
    for key, value in VIEW.items():
        parser.add_argument("--" + key.replace("_", "-"), type=type(value), default=value)
    for field in dataclasses.fields(PlasticcRecipe):
        parser.add_argument("--" + field.name.replace("_", "-"), type=type(field.default), default=field.default)
    args = parser.parse_args(argv)
    view = {k: getattr(args, k) for k in VIEW}
    recipe = PlasticcRecipe(**recipe_fields(args))
    dataset = [] if any(a.startswith("--dataset") for a in argv) else ["--dataset", "plasticc"]
    command = shlex.join(["fink-t2", "train", *dataset, *argv])
    result = run(args.setting, args.name, args.cv, view, recipe, args.data_dir, command, max_folds=args.max_folds)
    if args.ship:
        from fink_t2.model.plasticc_ship import ship

        return ship(args.setting, view, recipe, args.data_dir, command, result)
    return {"model": None, "model_size": {"tflite_bytes": None}, "name": result["name"]}


if __name__ == "__main__":
    main()
