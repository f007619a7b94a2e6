"""Tests of the t2 training code (needs the ``train`` extra and the shared data sets)."""

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tf_keras  # noqa: F401 - train extra: a missing install must fail, not skip

from fink_t2.core.calibration import CALIBRATION_CHANNELS
from fink_t2.core.contract import read_contract
from fink_t2.core.sequences import CHANNELS, SEQUENCE_LENGTH, WINDOW_DAYS, build_sequences
from fink_t2.model.architecture import build_model, keras
from fink_t2.model.calibration import fit_calibration
from fink_t2.model.datasets import (
    CLASS_NAMES,
    cv_folds,
    load_bts,
    load_snpcc,
    load_table,
    object_table,
    type_to_class,
    validation_ids,
)
from fink_t2.model.evaluate import guard_metrics
from fink_t2.model.train import Recipe, train_and_export, view_inputs
from fink_t2.model.views import AGE_BUCKETS, alert_views, sample_views
from fink_t2.runtime.inference import T2Model

DATA_DIR = Path(os.environ.get("FINK_T2_DATA", Path(__file__).parents[1] / "../shared/data"))
assert (DATA_DIR / "ztf_bts").is_dir(), f"no BTS data in {DATA_DIR}: set FINK_T2_DATA"  # fail, never skip


@pytest.fixture(scope="module")
def bts():
    return load_bts(DATA_DIR)


def test_architecture_size_and_softmax():
    model = build_model(len(CLASS_NAMES))
    assert 10_000 < model.count_params() < 20_000
    x = np.random.default_rng(0).random((3, SEQUENCE_LENGTH, len(CHANNELS))).astype(np.float32)
    proba = model.predict(x, verbose=0)
    assert proba.shape == (3, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    clone = keras.models.model_from_json(model.to_json())  # custom layer is serialisable
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(x, verbose=0), proba, rtol=1e-5)


@pytest.mark.parametrize("mode", ["temperature", "age"])
def test_calibration_is_fitted_then_carried_by_the_contract_and_keeps_the_decision(mode, tmp_path):
    from fink_t2.core.calibration import calibrated_probabilities, now_features
    from fink_t2.core.classifier import classify_alerts
    from fink_t2.core.contract import attach_contract, make_contract
    from fink_t2.model.export import tflite_bytes

    rng = np.random.default_rng(0)
    x = rng.random((400, SEQUENCE_LENGTH, len(CHANNELS))).astype(np.float32)
    x[:, :, CHANNELS.index("age")] = rng.uniform(-1, 3, (400, 1))  # the age channel varies between alerts
    keras.utils.set_random_seed(0)  # the untrained network's output, hence the gain below, is reproducible
    model = build_model(len(CLASS_NAMES))
    raw = model.predict(x, verbose=0).astype(np.float64)
    # labels that an age-dependent, softer output explains better than the raw one: the fit has work to do
    y = np.where(x[:, -1, CHANNELS.index("age")] > 1, 0, rng.integers(0, 4, 400))
    params = fit_calibration(raw, x, y, mode)
    assert params["mode"] == mode
    # a temperature alone cannot use the age: it only softens the output; the age offsets learn the rule
    gain = {"temperature": 0.01, "age": 0.05}[mode]
    assert params["validation_log_loss"]["after"] < params["validation_log_loss"]["before"] - gain, params
    # what the runtime computes is the fitted formula of the raw output
    z = np.log(raw) / params["temperature"]
    if mode == "age":
        chan = [CHANNELS.index(c) for c in CALIBRATION_CHANNELS]
        d = np.array([params["channel_offsets"][c] for c in CALIBRATION_CHANNELS])
        z += np.array(params["class_offsets"]) + x[:, -1, chan] @ d
    expected = np.exp(z - z.max(axis=1, keepdims=True))
    expected /= expected.sum(axis=1, keepdims=True)
    np.testing.assert_allclose(calibrated_probabilities(raw, now_features(x), params), expected, atol=2e-6)
    # carried by the contract of a real model file; the decision is still the raw output's argmax
    path = tmp_path / "t2.tflite"
    path.write_bytes(attach_contract(tflite_bytes(model, "dynamic"), make_contract(CLASS_NAMES, calibration=params)))
    runner = T2Model(str(path))
    assert read_contract(path)["calibration"]["temperature"] == params["temperature"]
    jd = [np.array([2459000.5, 2459001.5, 2459003.5])] * 2
    result = classify_alerts(np.concatenate(jd), np.array([1, 2, 1] * 2, float), np.array([19.0, 18.7, 18.2] * 2),
                             None, [0, 3, 6], [2459003.5] * 2, [2459000.5, 2459000.5 - 60], [3, 40], [0, 0],
                             ["Unknown"] * 2, runner)
    values = build_sequences(jd, [np.array([1, 2, 1])] * 2, [np.array([19.0, 18.7, 18.2])] * 2,
                             jd_now=[2459003.5] * 2, jdstarthist=[2459000.5, 2459000.5 - 60], ndethist=[3, 40]).values
    out = runner.predict(values)
    np.testing.assert_allclose(result.proba, calibrated_probabilities(out, now_features(values), params), atol=1e-6)
    assert list(result.label) == [CLASS_NAMES[i] for i in out.argmax(axis=1)]


def test_a_contract_with_a_broken_calibration_is_refused(tmp_path):
    from fink_t2.core.contract import ModelContractError, attach_contract, make_contract, strip_contract
    from fink_t2.runtime.model_ref import DEFAULT_MODEL_PATH

    bad = {"temperature": -1.0, "class_offsets": [0.0] * 4, "channel_offsets": {c: [0.0] * 4 for c in CALIBRATION_CHANNELS}}
    for calibration in (bad, {**bad, "temperature": 1.0, "class_offsets": [0.0] * 3}, {"temperature": 1.0}):
        path = tmp_path / "t2.tflite"
        path.write_bytes(attach_contract(strip_contract(DEFAULT_MODEL_PATH),
                                         make_contract(CLASS_NAMES, calibration=calibration)))
        with pytest.raises(ModelContractError, match="calibration"):
            read_contract(path)


def test_every_labelled_type_is_mapped():
    bts_types = pd.read_csv(DATA_DIR / "ztf_bts" / "labels.csv")["type"].unique()
    snpcc_types = pd.read_csv(DATA_DIR / "snpcc_des" / "labels.csv")["type"].unique()
    mapped = {t: type_to_class(t) for t in [*bts_types, *snpcc_types]}
    assert all(c in CLASS_NAMES for c in mapped.values()), mapped
    assert mapped["SN Ia-91T"] == "SN Ia" and mapped["SN IIb"] == "SN II" and mapped["SN Ic-BL"] == "SN Ibc"
    assert mapped["TDE"] == "Other" and mapped["IIP"] == "SN II" and mapped["Ibc"] == "SN Ibc"


def test_tables_and_grouped_stratified_folds(bts):
    assert set(bts.columns) == {"object_id", "jd", "fid", "mag", "magerr", "label", "source", "redshift"}
    assert (bts["magerr"] > 0).all() and bts.groupby("object_id")["redshift"].first().notna().mean() > 0.99
    assert set(bts["fid"]) == {1, 2} and bts["jd"].min() > 2400000.5 and set(bts["source"]) == {"bts"}
    snpcc = load_snpcc(DATA_DIR, max_objects=30, seed=1)
    assert snpcc["object_id"].nunique() == 30 and set(snpcc["fid"]) <= {1, 2}
    assert snpcc.groupby("object_id")["label"].first().value_counts().tolist() == [10, 10, 10]
    objects = object_table(bts)
    folds = cv_folds(objects, 5, seed=3)
    tested = np.concatenate([test for _, test in folds])
    assert len(tested) == len(objects) and len(set(tested)) == len(objects)  # every object tested exactly once
    share = objects.set_index("object_id")["label"].value_counts(normalize=True)
    for train, test in folds:
        assert not set(train) & set(test)
        fold_share = objects.set_index("object_id").loc[test, "label"].value_counts(normalize=True)
        assert (abs(fold_share - share) < 0.02).all()  # stratified
    val = validation_ids(objects, 0.15, seed=3)
    assert abs(len(val) / len(objects) - 0.15) < 0.01 and np.array_equal(val, validation_ids(objects, 0.15, seed=3))


def test_views_are_what_an_alert_would_carry(bts):
    table = bts[bts["object_id"].isin(bts["object_id"].unique()[:40])]
    views = alert_views(table)
    assert (views.age > 0).all() and (views.age <= 90).all()
    x, y = view_inputs(views)
    assert len(y) >= 0.98 * len(views) and x.shape[1:] == (SEQUENCE_LENGTH, len(CHANNELS))
    for i in range(0, len(views), 37):  # each view == build_sequences on the object cut by hand
        obj = table[table["object_id"] == views.object_id[i]].sort_values("jd")
        now = views.jd_now[i]
        cut = obj[(obj["jd"] <= now) & (obj["jd"] >= now - WINDOW_DAYS)]
        seq = build_sequences([cut["jd"].to_numpy()], [cut["fid"].to_numpy()], [cut["mag"].to_numpy()],
                              jd_now=[now], jdstarthist=[obj["jd"].min()], ndethist=[(obj["jd"] <= now).sum()])
        view = views.select([i])
        mine = build_sequences(view.jd, view.fid, view.mag, None, view.jd_now, view.jdstarthist, view.ndethist,
                               offsets=view.offsets)
        np.testing.assert_array_equal(mine.values, seq.values)
        assert views.label[i] == obj["label"].iloc[0]


def test_sampling_keeps_young_alerts(bts):
    views = alert_views(bts[bts["object_id"].isin(bts["object_id"].unique()[:300])])
    sampled = sample_views(views, per_bucket=2, seed=0)
    counts = pd.DataFrame({"o": sampled.object_id, "b": sampled.bucket()}).value_counts()
    assert counts.max() <= 2
    young = np.isin(sampled.bucket(), [0, 1]).mean()
    assert young > 1.5 * np.isin(views.bucket(), [0, 1]).mean()  # young views are no longer outnumbered
    assert set(sampled.bucket()) == set(range(len(AGE_BUCKETS)))


def test_tiny_train_and_export(tmp_path, bts):
    recipe = Recipe(epochs=1, views_per_bucket=1, seed=0)
    metrics = train_and_export(DATA_DIR, tmp_path, tmp_path / "float", recipe, cv_folds=2, max_objects=80,
                               progress=False)
    path = tmp_path / "t2.tflite"
    for kept in ("t2_savedmodel", "t2.keras", "t2.h5", "float_model.json", "t2_metrics.json"):  # fink-t2 compress inputs
        assert (tmp_path / "float" / kept).exists(), kept
    contract = read_contract(path)
    assert contract["class_names"] == list(CLASS_NAMES) and contract["training"]["recipe"]["seed"] == 0
    assert metrics["model_size"]["tflite_bytes"] == path.stat().st_size
    buckets = metrics["cross_validation"]["buckets"]
    assert list(buckets) == ["0-3", "3-7", "7-15", "15-30", "30-60", "60-90"]
    assert all(len(b["log_loss"]["folds"]) == 2 for b in buckets.values() if b["n_views"])
    # the guard metrics recorded for the file are what the file gives on the same light curves
    table = load_table(DATA_DIR, 80, recipe.snpcc_objects, recipe.seed)
    again = json.loads(json.dumps(guard_metrics(T2Model(str(path)), table)))
    assert again == json.loads((tmp_path / "t2_metrics.json").read_text())["guard"] and again["n_views"] > 100
