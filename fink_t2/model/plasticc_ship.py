"""Train a PLAsTiCC setting on every object and write its model file, contract and metrics.

``rubin`` → ``fink_t2/data/t2_lsst.tflite`` + ``t2_lsst_metrics.json`` (the shipped Rubin model); other
settings → ``build/plasticc/models/`` (the float model kept beside it for the compression table).
The metrics carry the command, recipe, view, the cross-validation summary and the guard metrics that
``tests/test_lsst_model.py`` recomputes from the file on a small fixed subset (training objects: a check
that the file still computes what it did, not a quality figure; quality is the cross-validation's).
"""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone

from fink_t2.model.plasticc import BROAD_CLASSES, CLASS_NAMES, split_objects
from fink_t2.model.plasticc_guard import guard_metrics
from fink_t2.model.plasticc_train import fit, quantized_file
from fink_t2.paths import MODEL_DIR

LSST_MODEL = "t2_lsst.tflite"
LSST_METRICS = "t2_lsst_metrics.json"
#: what a Rubin alert reader must feed the model (issue 21), written into the contract
RUBIN_INPUTS = {
    "time": "midpointMjdTai (days, MJD TAI) of every diaSource and diaForcedSource",
    "band": "band name u, g, r, i, z or y (channel order: the contract's bands)",
    "flux": "psfFlux in nJy (the contract's flux_unit; zero point 31.4 AB)",
    "detected": "1 for diaSource and prvDiaSources rows, 0 for prvDiaForcedSources rows",
    "rows": "diaSource + prvDiaSources + prvDiaForcedSources within window_days before the alert",
    "t_now": "the alert's diaSource midpointMjdTai",
    "t_first": "the first detection of the object (may be older than the window)",
    "builder": "fink_t2.core.flux_sequences.build_flux_sequences(spec_from_contract(contract), ...)",
}


def ship(setting: str, view: dict, recipe, data_dir=None, command=None, cv: dict | None = None) -> dict:
    """Train ``setting`` on every object (a stratified 15 % for early stopping) and write the file + metrics."""
    from fink_t2.model.plasticc_run import BUILD, full_curve_data
    from fink_t2.runtime.inference import T2Model

    if setting == "rubin":
        from fink_t2.model.plasticc_alerts import alert_data
        from fink_t2.model.plasticc_run import spec_of

        objects, inputs, spec = alert_data(spec_of(setting, view), data_dir, recipe.seed)
        out_dir, name, keep = MODEL_DIR, LSST_MODEL, BUILD / "models" / "rubin_float"
    else:
        objects, inputs, spec = full_curve_data(setting, view, data_dir)
        out_dir, name, keep = BUILD / "models", f"t2_plasticc_{setting}.tflite", BUILD / "models" / f"{setting}_float"
    fit_ids, val_ids = split_objects(objects["object_id"].to_numpy(), objects["y"].to_numpy(),
                                     recipe.validation_fraction, recipe.seed)
    model, info = fit(*inputs(fit_ids, "train_augmented"), *inputs(val_ids, "train"), len(CLASS_NAMES), recipe, progress=True)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    extra = {"created": created, "training": {"command": command, "recipe": dataclasses.asdict(recipe)},
             "broad_classes": BROAD_CLASSES}
    if setting == "rubin":
        extra["inputs"] = RUBIN_INPUTS
    content, contract = quantized_file(model, spec, CLASS_NAMES, keep_dir=keep, **extra)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / name
    path.write_bytes(content)
    metrics = {"model": name, "setting": setting, "created": created, "command": command,
               "recipe": dataclasses.asdict(recipe), "view": view, "spec": spec.contract_fields(),
               "class_names": list(CLASS_NAMES), "training": info,
               "cross_validation": cv and {"n_folds": cv["n_folds"], "summary": cv["summary"]},
               "guard": guard_metrics(T2Model(str(path)), setting, spec, view["anchor"], data_dir),
               "model_size": {"tflite_bytes": path.stat().st_size, "parameters": int(model.count_params()),
                              "quantization": "TFLite dynamic-range quantization (int8 weights, float activations)"}}
    metrics_path = path.with_name(LSST_METRICS if setting == "rubin" else path.stem + "_metrics.json")
    metrics_path.write_text(json.dumps(metrics, indent=1) + "\n")
    (keep / "float_model.json").write_text(json.dumps({"setting": setting, "view": view,
                                                      "recipe": dataclasses.asdict(recipe)}, indent=1))
    print(f"wrote {path} ({path.stat().st_size} bytes), {metrics_path}")
    return metrics
