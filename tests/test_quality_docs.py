"""Every number quoted in docs/quality.md, compression.md and preprocessing.md is read from their JSON files,
and the quality JSON is the cross-validation recorded with the shipped model."""

import json
from pathlib import Path

import numpy as np
import pytest
from script_modules import load_script

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
METRICS = json.loads((ROOT / "fink_t2" / "data" / "t2_metrics.json").read_text())



@pytest.fixture(scope="module")
def quality():
    return json.loads((DOCS / "quality.json").read_text())


def test_quality_json_is_the_shipped_models_cross_validation(quality):
    assert quality["cross_validation"] == METRICS["cross_validation"]
    assert quality["recipe"] == METRICS["recipe"] == METRICS["cross_validation"]["recipe"]
    assert quality["model_command"] == METRICS["command"]
    assert quality["model_bytes"] == (ROOT / "fink_t2" / "data" / "t2.tflite").stat().st_size
    assert list(quality["cross_validation"]["buckets"]) == ["0-3", "3-7", "7-15", "15-30", "30-60", "60-90"]


def test_quality_targets_and_page_follow_from_the_json(quality):
    report = load_script("quality_report")
    speed = quality["throughput"]["classified_per_s"] if quality["throughput"] else None
    assert quality["targets"] == json.loads(json.dumps(report.targets(quality["cross_validation"],
                                                                       quality["model_bytes"], speed)))
    assert (DOCS / "quality.md").read_text() == report.markdown(quality)
    assert (DOCS / "quality_by_age.png").stat().st_size > 10_000


def test_experiment_log_is_written_by_scripts():
    """Every entry came from a recipe_search command, or is flagged not reproducible with a reason; the entries
    typed in from a run's log (per-fold values of a stopped run) are flagged."""
    log = json.loads((DOCS / "quality_experiments.json").read_text())["experiments"]
    for name, entry in log.items():
        assert set(entry["cv_mean"]) >= {"macro_f1", "log_loss", "prior_log_loss"}, name
        if "per_fold" in entry:
            assert entry.get("reproducible") is False and entry["not_reproducible_because"], name
    balanced = [e for e in log.values() if "--decision balanced" in e["command"] and "decision_beta" in e]
    assert balanced and all(len(e["decision_beta"]["per_fold"]) == e["folds"] for e in balanced)


def test_recipe_search_never_overwrites_an_entry(tmp_path):
    search = load_script("recipe_search")
    log = tmp_path / "log.json"
    search.record("a", {"cv_mean": {"macro_f1": {"0-3": 0.1}}}, log)
    with pytest.raises(SystemExit, match="never overwritten"):
        search.record("a", {"cv_mean": {"macro_f1": {"0-3": 0.9}}}, log)
    assert json.loads(log.read_text())["experiments"]["a"]["cv_mean"]["macro_f1"]["0-3"] == 0.1
    flagged = search.mark_not_reproducible("a", "typed in", log)
    assert flagged["reproducible"] is False and flagged["cv_mean"]["macro_f1"]["0-3"] == 0.1


def test_one_fold_of_the_cross_validation_gives_its_stored_value():
    """One fold of the shipped recipe's CV, retrained on a fixed small subset (scripts/ci_fold.py), against the
    value stored in docs/ci_fold.json: views, cuts, preprocessing, training, quantization or metrics that change
    move these numbers (the run is deterministic on one machine; the tolerance allows other CPUs' rounding)."""
    stored = json.loads((DOCS / "ci_fold.json").read_text())
    again = load_script("ci_fold").compute()
    assert again["objects"] == stored["objects"] and again["recipe"] == stored["recipe"]
    for bucket, row in stored["buckets"].items():
        new = again["buckets"][bucket]
        assert (new["n_views"], new["n_objects"]) == (row["n_views"], row["n_objects"]), bucket
        assert new["prior_log_loss"] == pytest.approx(row["prior_log_loss"], abs=1e-9), bucket
        for metric in ("accuracy", "macro_f1", "log_loss"):
            assert new[metric] == pytest.approx(row[metric], abs=0.01), (bucket, metric)


def test_compression_page_follows_from_its_json():
    data = json.loads((DOCS / "compression.json").read_text())
    assert (DOCS / "compression.md").read_text() == load_script("compression_table").markdown(data["variants"], data["meta"])
    shipped = METRICS["model_size"]["variant"]
    assert data["meta"]["shipped_variant"] == shipped
    row = next(r for r in data["variants"] if r["variant"] == shipped)
    assert row["bytes"] == METRICS["model_size"]["tflite_without_contract_bytes"]


def test_preprocessing_page_follows_from_its_json():
    data = json.loads((DOCS / "preprocessing.json").read_text())
    assert (DOCS / "preprocessing.md").read_text() == load_script("preprocessing_study").markdown(data)
    assert set(data["quality"]) >= {"production", "gp"}


def test_header_table_is_the_census_of_the_real_alerts(quality):
    """docs/headers.json is what scripts/header_census.py measures on the real alerts now, and quality.json shows it."""
    stored = json.loads((DOCS / "headers.json").read_text())
    assert json.loads(json.dumps(load_script("header_census").census())) == stored
    assert quality["headers"] == {k: v for k, v in stored.items() if k != "samples"}
    passing = stored["groups"]["passing t2's cuts"]
    assert passing["alerts"] == len(stored["samples"]["ratio_gr"]) > 0


def test_fresh_fold_check_is_shown_beside_the_original(quality):
    fresh = json.loads((DOCS / "fresh_folds.json").read_text())
    assert quality["fresh_folds"] == fresh
    assert fresh["fold_seed"] != fresh["original_fold_seed"] == METRICS["cross_validation"]["seed"]
    assert fresh["recipe"] == METRICS["cross_validation"]["recipe"]
    for bucket, row in fresh["versus_original"].items():
        for metric, value in row.items():
            assert value["original"] == METRICS["cross_validation"]["buckets"][bucket][metric]["mean"]
            assert value["fresh"] == fresh["cross_validation"]["buckets"][bucket][metric]["mean"]


def test_header_perturbation_of_real_views():
    """The perturbed scoring changes only the header, as measured: ndethist scaled, jdstarthist moved, age kept."""

    report = load_script("fresh_folds_report")
    from fink_t2.model.datasets import load_bts
    from fink_t2.model.views import alert_views

    bts = load_bts()
    views = alert_views(bts[bts["object_id"].isin(bts["object_id"].unique()[:20])])
    moved = report.perturb(views, 2.5, 5.0)
    assert (moved.ndethist == np.maximum(1, np.round(views.ndethist * 2.5))).all()
    assert np.allclose(moved.jdstarthist, views.jdstarthist - 5.0) and (moved.age == views.age).all()
    samples = json.loads((DOCS / "headers.json").read_text())["samples"]
    ratio, offset = report.measured_draw(len(views), samples)
    assert set(ratio) <= set(samples["ratio_gr"]) and set(offset) <= set(samples["start_offset_days"])


def test_cutoffs_take_each_objects_latest_alert_by_then():
    """On real BTS views with known decisions: perfect decisions score 1, all-SN-Ia decisions score the SN Ia share."""

    cut = load_script("alert_time_cutoffs")
    from fink_t2.model.datasets import CLASS_NAMES, load_bts
    from fink_t2.model.views import alert_views

    bts = load_bts()
    views = alert_views(bts[bts["object_id"].isin(bts["object_id"].unique()[::20])])
    truth = views.label.astype(str)
    proba = (truth[:, None] == np.array(CLASS_NAMES)[None, :]).astype(np.float32)
    pred = {"object_id": views.object_id.astype(str), "age": views.age, "y": truth, "label": truth, "proba": proba,
            "status": np.full(len(views), "ok")}
    perfect = cut.cutoffs([{"pred": pred}])
    assert all(v["macro_f1"]["mean"] == 1.0 for v in perfect["oracle"].values())
    assert all(v["accuracy_t2_map"]["mean"] == 1.0 for v in perfect["gagliano"].values())
    rows = cut.latest_views(pred, 8)
    assert rows["object"].is_unique and (rows["age"] <= 8).all()
    young = pred["age"] <= 8
    assert rows.set_index("object")["age"].to_dict() == {
        o: pred["age"][young & (pred["object_id"] == o)].max() for o in rows["object"]}
    all_ia = cut.gagliano([{"pred": {**pred, "label": np.full(len(views), "SN Ia")}}])["30"]
    rows = cut.latest_views(pred, 30)
    sn = rows[rows["y"].isin(cut.SN_CLASSES)]
    assert all_ia["accuracy_t2_class"]["mean"] == pytest.approx(np.mean(sn["y"] == "SN Ia"))


def test_vs_fink_page_follows_from_its_json():
    path = DOCS / "vs_fink.json"
    data = json.loads(path.read_text())
    assert (DOCS / "vs_fink.md").read_text() == load_script("vs_fink_page").markdown(data)
    assert (DOCS / "vs_fink.png").stat().st_size > 10_000
    fresh = json.loads((DOCS / "fresh_folds.json").read_text())
    assert data["fold_seed"] == fresh["fold_seed"]
    for bucket, rows in data["buckets"].items():
        assert rows["t2 (P(SN Ia) > 0.5)"]["n_views"] == fresh["cross_validation"]["buckets"][bucket]["n_views"]
        assert rows["t2 (P(SN Ia) > 0.5)"]["auc"] == pytest.approx(fresh["sn_ia_auc"]["unchanged"][bucket]["mean"],
                                                                   abs=0.05), bucket
