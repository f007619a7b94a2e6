"""The Rubin cuts' thresholds are what the PLAsTiCC cross-validation of the shipped Rubin model says
(fink_t2.core.rubin_cuts explains the rule), and docs/fink.md quotes that file's figures."""

import json
import os

import numpy as np
import pytest

from fink_t2.core.rubin_cuts import MAX_AGE_DAYS, MIN_DETECTIONS, STATUS_SSO, cut_status, header_status
from fink_t2.paths import LSST_MODEL_PATH, REPO_ROOT

METRICS = REPO_ROOT / "fink_t2" / "data" / "t2_lsst_metrics.json"
DOC = REPO_ROOT / "docs" / "fink.md"


@pytest.fixture(scope="module")
def summary() -> dict:
    metrics = json.loads(METRICS.read_text())
    assert metrics["model"] == "t2_lsst.tflite" and LSST_MODEL_PATH.endswith(metrics["model"])
    return metrics["cross_validation"]["summary"]


def significant_gain(entry) -> bool:
    """The model's log-loss below the class prior's by more than twice its fold-to-fold standard deviation."""
    return entry["prior"]["log_loss"]["mean"] - entry["log_loss"]["mean"] > 2 * entry["log_loss"]["std"]


def test_min_detections_is_the_fewest_count_with_a_significant_gain_over_the_prior(summary):
    counts = {int(k): v for k, v in summary["detections"]["n_detections"].items()}
    assert sorted(counts) == [1, 3, 5, 10]
    gains = {k: significant_gain(v) for k, v in sorted(counts.items())}
    chosen = min(k for k in gains if all(gains[j] for j in gains if j >= k))
    assert MIN_DETECTIONS == chosen, gains


@pytest.fixture
def training_modules(monkeypatch):
    """Import fink_t2.model.* with TF_USE_LEGACY_KERAS (which importing the package sets) restored afterwards: in
    Fink's venv (TensorFlow without tf_keras) a later test's TensorFlow must not see it."""
    monkeypatch.setenv("TF_USE_LEGACY_KERAS", os.environ.get("TF_USE_LEGACY_KERAS", ""))  # restored at teardown
    from fink_t2.model.plasticc import load_plasticc
    from fink_t2.model.plasticc_report_text import REFERENCE

    return load_plasticc, REFERENCE


def test_max_age_is_the_range_the_cross_validation_scored(summary, shared_data, training_modules):
    load_plasticc, _ = training_modules

    buckets = summary["alerts"]["age_bucket"]
    assert len(buckets) == 8 and "365+" in buckets
    assert all(significant_gain(v) for v in buckets.values()), "a bucket without gain: the age cut must move there"
    lc, _ = load_plasticc(shared_data)
    detections = lc[lc["detected"]].groupby("object_id")["mjd"]
    oldest = float((detections.max() - detections.min()).max())
    assert oldest <= MAX_AGE_DAYS < oldest + 5, oldest


def doc_rows(summary) -> list[str]:
    rows = []
    for k, e in sorted(summary["detections"]["n_detections"].items(), key=lambda kv: int(kv[0])):
        rows.append(f"| {k} detection{'s' if k != '1' else ''} | {e['log_loss']['mean']:.3f} ± {e['log_loss']['std']:.3f} "
                    f"| {e['prior']['log_loss']['mean']:.3f} | {'yes' if significant_gain(e) else 'no'} |")
    order = ["0-3", "3-7", "7-15", "15-30", "30-60", "60-90", "90-365", "365+"]
    for name in order:
        e = summary["alerts"]["age_bucket"][name]
        rows.append(f"| {name} d old | {e['log_loss']['mean']:.3f} ± {e['log_loss']['std']:.3f} "
                    f"| {e['prior']['log_loss']['mean']:.3f} | {'yes' if significant_gain(e) else 'no'} |")
    return rows


def test_docs_quote_the_metrics_files_figures(summary):
    text = DOC.read_text(encoding="utf-8")
    missing = [row for row in doc_rows(summary) if row not in text]
    assert not missing, "\n".join(missing)
    assert f"`MIN_DETECTIONS = {MIN_DETECTIONS}`" in text and f"`MAX_AGE_DAYS = {MAX_AGE_DAYS:g}`" in text


def test_the_reference_is_better_at_every_count_as_the_docs_say(summary, training_modules):
    _, REFERENCE = training_modules

    text = DOC.read_text(encoding="utf-8")
    counts = summary["detections"]["n_detections"]
    quoted = " / ".join(f"{REFERENCE['detections'][k][0]:g}" for k in sorted(counts, key=int))
    assert f"flat log-loss {quoted} at 1 / 3 / 5 / 10 detections" in " ".join(text.split())
    assert all(counts[k]["flat_log_loss"]["mean"] > REFERENCE["detections"][k][0] for k in counts)


def test_cut_order_and_edges():
    n = [MIN_DETECTIONS, MIN_DETECTIONS - 1, MIN_DETECTIONS, MIN_DETECTIONS, 0, MIN_DETECTIONS]
    age = [MAX_AGE_DAYS, 1.0, MAX_AGE_DAYS + 0.01, np.nan, MAX_AGE_DAYS + 1, 0.0]
    sso = [False, False, False, False, False, True]
    assert cut_status(n, age, sso).tolist() == ["ok", "too_few_detections", "too_old", "too_old", "too_old", STATUS_SSO]
    assert header_status([None, 0, np.nan, 5, "junk"], [None, None, 0.0, None, 3]).tolist() == \
        ["ok", "ok", "ok", STATUS_SSO, STATUS_SSO]
