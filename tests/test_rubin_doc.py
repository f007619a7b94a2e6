"""docs/rubin.md follows from docs/rubin.json (``scripts/rubin_compare.py``), and the JSON is what it says it is:
the shipped Rubin model's file and every fold of its cross-validation (each fold's model recorded by SHA-256),
one thread per module, every module and age bucket scored per fold and pooled, targets that follow from its own
figures (pooled and fold by fold), every real Rubin sample alert with a status. The Fink modules are not rerun
here (they need fink-science's own venv); the script refuses to start without one, with a one-line error."""

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from script_modules import load_script

from fink_t2.core.rubin_cuts import STATUSES
from fink_t2.model.plasticc_alerts import rubin_bucket_names
from fink_t2.paths import LSST_MODEL_PATH

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
METRICS = json.loads((ROOT / "fink_t2" / "data" / "t2_lsst_metrics.json").read_text())
FINK_MODULES = ("SuperNNova SN_vs_other", "SuperNNova elasticc_ia", "CATS", "Early SN Ia")


@pytest.fixture(scope="module")
def rubin():
    return json.loads((DOCS / "rubin.json").read_text())


def test_page_follows_from_its_json(rubin):
    assert (DOCS / "rubin.md").read_text() == load_script("rubin_compare_page").markdown(rubin)
    assert (DOCS / "rubin.png").stat().st_size > 10_000


def test_json_is_the_shipped_model_and_its_cross_validation(rubin):
    provenance = rubin["provenance"]
    assert provenance["model_sha256"] == hashlib.sha256(Path(LSST_MODEL_PATH).read_bytes()).hexdigest()
    assert provenance["metrics_created"] == METRICS["created"]
    assert provenance["commit"]
    views, folds = rubin["views"], rubin["folds"]
    n_folds = METRICS["cross_validation"]["n_folds"]
    assert (views["n_folds"], views["seed"]) == (n_folds, METRICS["recipe"]["seed"])
    assert [f["fold"] for f in folds] == views["folds"] == list(range(n_folds))  # every fold, none twice
    assert 0 < views["objects"] <= views["heldout_objects"]
    assert views["alerts"] == sum(entry["n"] for entry in rubin["buckets"].values())
    assert views["packing_check"]["alerts_compared"] > 0
    assert views["packing_check"]["max_abs_probability_difference"] < 1e-4  # the packets carry t2's views whole


def test_every_fold_has_its_own_recorded_model_and_alerts(rubin):
    folds, shas = rubin["folds"], rubin["provenance"]["fold_model_sha256"]
    assert shas == [f["model"]["sha256"] for f in folds]
    assert all(len(h) == 64 and int(h, 16) >= 0 for h in shas)
    assert len(set(shas)) == len(folds)  # each fold scored by its own model, not one model reused
    assert all(f["model"]["metrics_created"] == METRICS["created"] for f in folds)
    for f in folds:
        assert f["model"]["file"].endswith(f"fold{f['fold']}.tflite")
        assert f["model"]["training"]["temperature"] > 0
        assert 0 < f["views"]["objects"] <= f["views"]["heldout_objects"]
        assert f["views"]["alerts"] == sum(entry["n"] for entry in f["buckets"].values())
        assert f["views"]["packing_check"]["max_abs_probability_difference"] < 1e-4
    for key in ("heldout_objects", "objects", "alerts"):
        assert rubin["views"][key] == sum(f["views"][key] for f in folds), key
    for bucket, entry in rubin["buckets"].items():  # the pooled figures are over the folds' alerts together
        for key in ("n", "n_sn", "n_ia"):
            assert entry[key] == sum(f["buckets"][bucket][key] for f in folds if bucket in f["buckets"]), (bucket, key)


def test_every_module_was_timed_on_one_thread(rubin):
    for before_after in (rubin["conditions_before"], rubin["conditions_after"]):
        assert len(before_after["load_average_1_5_15"]) == 3
        assert set(before_after["threads"]["environment"].values()) == {"1"}
    assert set(rubin["fink"]["threads"].values()) == {"1"}
    assert rubin["fink"]["versions"]["fink_science"].startswith("8.")
    for name, timing in rubin["throughput"].items():
        assert timing["alerts"] > 0 and timing["wall_s"] > 0, name
        assert timing["alerts_per_wall_s"] == pytest.approx(timing["alerts"] / timing["wall_s"], rel=0.01), name


@pytest.mark.parametrize("part", ["pooled", 0, 1, 2])
def test_every_module_and_bucket_is_scored_or_its_failure_stated(rubin, part):
    buckets = rubin["buckets"] if part == "pooled" else rubin["folds"][part]["buckets"]
    assert set(buckets) <= set(rubin_bucket_names())
    for name in FINK_MODULES:
        assert (name in rubin["modules"]) != (name in rubin["module_errors"]), name
    for bucket, entry in buckets.items():
        assert set(entry["modules"]) == set(rubin["modules"]), bucket
        for name, scores in entry["modules"].items():
            assert 0.0 <= scores["coverage"] <= 1.0
            for task in ("sn", "ia"):
                for key in ("auc_all", "auc_classified", "purity", "efficiency"):
                    value = scores[task][key]
                    assert value is None or 0.0 <= value <= 1.0, (bucket, name, task, key)


def test_targets_follow_from_the_figures(rubin):
    metrics = load_script("rubin_compare_metrics")
    assert rubin["targets"] == metrics.targets(rubin["buckets"], rubin["throughput"], "t2")
    for fold in rubin["folds"]:
        assert fold["targets"] == metrics.targets(fold["buckets"], rubin["throughput"], "t2"), fold["fold"]
    assert rubin["targets_per_fold"] == metrics.fold_tally(rubin["folds"])
    page = (DOCS / "rubin.md").read_text()
    for key, tally in rubin["targets_per_fold"].items():
        assert f"met in {tally['met_in']} of {len(rubin['folds'])} folds" in page, key


def test_without_a_fink_venv_the_script_says_how_to_get_one(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "FINK_PYTHON"}
    run = subprocess.run([sys.executable, str(ROOT / "scripts" / "rubin_compare.py"), "--out", str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode != 0
    message = run.stderr.strip().splitlines()
    assert len(message) == 1 and "$FINK_PYTHON" in message[0] and "rubin_compare_fink.py" in message[0], run.stderr
    assert not list(tmp_path.iterdir())  # nothing started, nothing written


def test_every_real_rubin_alert_has_a_status(rubin):
    rows = rubin["real_alerts"]
    assert len(rows) == 32
    assert {r["t2_status"] for r in rows} <= set(STATUSES)
    assert all((r["t2_decision"] is None) == (r["t2_status"] != "ok") for r in rows)
    check = rubin["real_alerts_check"]
    assert check["alerts"] == sum(r["fink_stored"] is not None for r in rows) == 7
