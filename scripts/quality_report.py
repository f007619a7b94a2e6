"""Quality of the shipped t2 model on the held-out BTS test split → docs/quality.md, confusion matrix, early curve.

    python scripts/quality_report.py            # shipped fink_t2/data/t2.tflite → docs/
    python scripts/quality_report.py --quick    # 120 objects per source → build/quick_docs/ (< 1 min)
    python scripts/quality_report.py --model build/exp/t2.tflite --out-dir build/exp_docs

The test split is rebuilt from the recipe recorded in the model's metrics JSON (data, seed, split fractions,
SNPCC subsample): BTS objects never trained on. Full light curves give the headline numbers; for the
early-classification curve every test object is also cut after each of its first ``--max-truncations``
detection epochs (the alert stream's view: the light curve known at each new alert).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fink_t2.inference import DEFAULT_MODEL_PATH, T2Model  # noqa: E402
from fink_t2.model.datasets import CLASS_NAMES, load_table, make_examples, split_objects  # noqa: E402

TARGETS = {"macro_f1": 0.65, "accuracy": 0.85}
SUPERPHOT_PLUS = {"macro_f1": 0.61, "accuracy": 0.83}
BINS = [(2, 2), (3, 3), (4, 4), (5, 5), (6, 7), (8, 10), (11, 15), (16, 20), (21, 30), (31, 10_000)]


def metrics(y, proba) -> dict:
    from sklearn.metrics import f1_score, log_loss, precision_recall_fscore_support

    labels = list(range(len(CLASS_NAMES)))
    p = np.clip(proba.astype(np.float64), 1e-7, 1)
    p /= p.sum(axis=1, keepdims=True)
    pred = p.argmax(axis=1)
    precision, recall, f1, support = precision_recall_fscore_support(y, pred, labels=labels, zero_division=0)
    return {"n": int(len(y)), "log_loss": float(log_loss(y, p, labels=labels)), "accuracy": float(np.mean(pred == y)),
            "macro_f1": float(f1_score(y, pred, labels=labels, average="macro", zero_division=0)),
            "per_class": {c: {"precision": float(precision[i]), "recall": float(recall[i]), "f1": float(f1[i]),
                              "support": int(support[i])} for i, c in enumerate(CLASS_NAMES)},
            "pred": pred}


def test_examples(recipe: dict, max_truncations: int, max_objects=None):
    """(full-curve examples, truncation examples) of the recipe's BTS test objects."""
    data = recipe["data"]
    seed = recipe["split"]["seed"]
    table = load_table(data["data_dir"], max_objects or data["max_objects"], data["snpcc_objects"], seed)
    objects = table.groupby("object_id", sort=True).agg(label=("label", "first"), source=("source", "first")).reset_index()
    split = split_objects(objects, tuple(recipe["split"]["fractions"].values()), seed)
    test_ids = split.index[split == "test"]
    ex = make_examples(table[table["object_id"].isin(test_ids)], max_truncations=max_truncations, seed=seed)
    return ex


def plot_confusion(cm: np.ndarray, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    norm = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    for i in range(len(cm)):
        for j in range(len(cm)):
            ax.text(j, i, f"{norm[i, j]:.2f}\n({cm[i, j]})", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES)
    ax.set_yticks(range(len(CLASS_NAMES)), CLASS_NAMES)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true (BTS spectroscopic type)")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def plot_early(rows: list[dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, [r["accuracy"] for r in rows], "o-", label="accuracy")
    ax.plot(x, [r["macro_f1"] for r in rows], "s-", label="macro-F1")
    ax.plot(x, [r["log_loss"] for r in rows], "^--", label="log-loss")
    ax.axhline(TARGETS["accuracy"], color="C0", lw=0.7, ls=":")
    ax.axhline(TARGETS["macro_f1"], color="C1", lw=0.7, ls=":")
    ax.set_xticks(x, [f"{r['bin']}\n({r['n']})" for r in rows], fontsize=7)
    ax.set_xlabel("g/r detections in the light curve (examples)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def _shown(path) -> str:
    """``path`` relative to the working folder when inside it (no machine-specific prefix in the docs)."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEFAULT_MODEL_PATH)
    parser.add_argument("--metrics", default=None, help="the model's metrics JSON (default: beside the model)")
    parser.add_argument("--out-dir", default=None, help="default docs (build/quick_docs with --quick)")
    parser.add_argument("--max-truncations", type=int, default=40)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--note", default=None, help="a paragraph added to quality.md (e.g. how the model was chosen)")
    args = parser.parse_args(argv)
    out_dir = Path(args.out_dir or ("build/quick_docs" if args.quick else "docs"))
    out_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = Path(args.metrics or Path(args.model).with_name("t2_metrics.json"))
    recipe = json.loads(metrics_path.read_text())
    ex = test_examples(recipe, args.max_truncations if not args.quick else 10, 120 if args.quick else None)
    model = T2Model(args.model)
    assert list(model.class_names) == list(CLASS_NAMES), model.class_names
    proba = model.predict(ex.values)
    full = metrics(ex.label[ex.full], proba[ex.full])
    from sklearn.metrics import confusion_matrix

    cm = confusion_matrix(ex.label[ex.full], full["pred"], labels=list(range(len(CLASS_NAMES))))
    rows = []
    for lo, hi in BINS:
        keep = (ex.n_detections >= lo) & (ex.n_detections <= hi)
        if keep.sum() == 0:
            continue
        m = metrics(ex.label[keep], proba[keep])
        rows.append({"bin": f"{lo}" if lo == hi else (f"{lo}-{hi}" if hi < 10_000 else f">{lo - 1}"),
                     "n": m["n"], "log_loss": m["log_loss"], "accuracy": m["accuracy"], "macro_f1": m["macro_f1"]})
    name = Path(args.model).name
    created = recipe.get("command")
    plot_confusion(cm, out_dir / "confusion_matrix.png", f"{name}, BTS test, full light curves (n={full['n']})")
    plot_early(rows, out_dir / "early_classification.png", f"{name}: quality vs detections, BTS test objects")
    full.pop("pred")
    result = {"model": _shown(args.model), "model_command": created, "n_test_objects": int(ex.full.sum()),
              "full_curves": full, "by_detections": rows, "confusion_matrix": cm.tolist(), "targets": TARGETS,
              "superphot_plus_reference": SUPERPHOT_PLUS, "quick": args.quick,
              "created": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    (out_dir / "quality.json").write_text(json.dumps(result, indent=1) + "\n")
    met = {k: "met" if full[k] >= v else "missed" for k, v in TARGETS.items()}
    lines = [
        "# t2 quality on the held-out BTS test split",
        "",
        f"Model `{_shown(args.model)}` ({Path(args.model).stat().st_size:,} bytes), made by `{created}`. "
        f"Reproduce: `python scripts/quality_report.py{' --quick' if args.quick else ''}`.",
        "",
        f"Test split: {int(ex.full.sum())} BTS objects never trained on (split seed {recipe['split']['seed']}, "
        f"stratified by class), LiteRT on the shipped quantized file.",
        "",
        "## Full light curves",
        "",
        "| metric | t2 | target | Superphot+ (reference) |",
        "|---|---:|---:|---:|",
        f"| accuracy | {full['accuracy']:.3f} | ≥ {TARGETS['accuracy']} ({met['accuracy']}) | {SUPERPHOT_PLUS['accuracy']} |",
        f"| macro-F1 | {full['macro_f1']:.3f} | ≥ {TARGETS['macro_f1']} ({met['macro_f1']}) | {SUPERPHOT_PLUS['macro_f1']} |",
        f"| log-loss | {full['log_loss']:.3f} | | |",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---:|---:|---:|---:|",
        *[f"| {c} | {v['precision']:.3f} | {v['recall']:.3f} | {v['f1']:.3f} | {v['support']} |"
          for c, v in full["per_class"].items()],
        "",
        "![confusion matrix](confusion_matrix.png)",
        "",
        "## Early classification (quality vs number of detections)",
        "",
        f"Each test object cut after each of its first {args.max_truncations if not args.quick else 10} detection "
        "epochs, plus its full curve.",
        "",
        "| detections | examples | accuracy | macro-F1 | log-loss |",
        "|---|---:|---:|---:|---:|",
        *[f"| {r['bin']} | {r['n']} | {r['accuracy']:.3f} | {r['macro_f1']:.3f} | {r['log_loss']:.3f} |" for r in rows],
        "",
        "![early classification](early_classification.png)",
        "",
        *([f"Validation split (BTS, float model, full curves), from the metrics JSON: accuracy "
           f"{recipe['val_bts_float_keras']['full_curves']['accuracy']:.3f}, macro-F1 "
           f"{recipe['val_bts_float_keras']['full_curves']['macro_f1']:.3f}, log-loss "
           f"{recipe['val_bts_float_keras']['full_curves']['log_loss']:.3f}.", ""]
          if "val_bts_float_keras" in recipe else []),
        *([args.note, ""] if args.note else []),
        "Superphot+ numbers are from its paper (full light curves, a different BTS sample and class set); "
        "they are a reference, not a like-for-like comparison.",
        "",
    ]
    (out_dir / "quality.md").write_text("\n".join(lines))
    print(json.dumps({k: full[k] for k in ("accuracy", "macro_f1", "log_loss")}), f"→ {out_dir / 'quality.md'}")
    return result


if __name__ == "__main__":
    main()
