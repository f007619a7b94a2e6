"""The Rubin classify core on every real Rubin sample alert (25 lsst.v10_0, 7 Fink Rubin, 89 ELAsTiCC) and on
bad values: every alert gets a status, rejected alerts -1, nothing raises, one bad alert changes no other."""

import collections

import numpy as np
import pyarrow as pa
import pytest

from fink_t2.alerts.rubin import iter_rubin_tables
from fink_t2.alerts.rubin_table import CLASSIFIER_INPUTS
from fink_t2.core.contract import ModelContractError
from fink_t2.core.rubin_classifier import classify_rubin_columns
from fink_t2.core.rubin_cuts import MAX_AGE_DAYS, MIN_DETECTIONS, REJECTED, STATUSES
from fink_t2.paths import DEFAULT_MODEL_PATH, LSST_MODEL_PATH
from fink_t2.runtime.inference import load_model
from fink_t2.runtime.model_ref import ModelRef

#: file → (alerts, known solar-system objects) of ../shared/data/lsst_alerts
SAMPLES = {"rubin_sample_data_10_0.parquet": (25, 3), "part-2-918301.avro": (7, 2),
           "elasticc_sample_seed0.parquet": (89, 0)}


@pytest.fixture(scope="module")
def model():
    return load_model(ModelRef.resolve(LSST_MODEL_PATH))


@pytest.fixture(scope="module")
def tables(shared_data) -> dict:
    out = {}
    for name in SAMPLES:
        table = pa.concat_tables(iter_rubin_tables(shared_data / "lsst_alerts" / name)).to_pandas()
        assert table["ingest_error"].isna().all()
        out[name] = table
    return out


def run(table, model):
    return classify_rubin_columns(*(table[c] for c in CLASSIFIER_INPUTS), model)


def columns(table):
    return {c: list(table[c]) for c in CLASSIFIER_INPUTS}


def classify(cols, model):
    return classify_rubin_columns(*(cols[c] for c in CLASSIFIER_INPUTS), model)


def check_consistent(result, n_classes):
    ok = result.status == "ok"
    assert set(result.status) <= set(STATUSES)
    assert (result.proba[~ok] == REJECTED).all() and all(label is None for label in result.label[~ok])
    assert np.allclose(result.proba[ok].sum(axis=1), 1, atol=1e-3) and (result.proba[ok] >= 0).all()
    assert all(label is not None for label in result.label[ok])


@pytest.mark.parametrize("name", sorted(SAMPLES))
def test_every_real_sample_alert_gets_a_status(tables, model, name):
    table = tables[name]
    n, sso = SAMPLES[name]
    result = run(table, model)
    assert len(table) == len(result.status) == n and result.proba.shape == (n, 14)
    check_consistent(result, 14)
    counts = collections.Counter(result.status)
    assert counts["solar_system_object"] == sso == int(table["is_sso"].sum())
    assert counts["ok"] >= 3, counts
    status_only = classify_rubin_columns(*(table[c] for c in CLASSIFIER_INPUTS), None)
    assert status_only.status.tolist() == result.status.tolist() and status_only.proba is None


def test_every_classified_alert_passes_the_cuts(tables, model):
    table = tables["elasticc_sample_seed0.parquet"]
    result = run(table, model)
    for i in np.flatnonzero(result.status == "ok"):
        times = np.asarray(table["cmidpointMjdTai"][i], dtype=float)
        assert len(times) >= MIN_DETECTIONS and times[-1] - times.min() <= MAX_AGE_DAYS
    for i in np.flatnonzero(result.status == "too_old"):
        times = np.asarray(table["cmidpointMjdTai"][i], dtype=float)
        assert times[-1] - times.min() > MAX_AGE_DAYS


def test_a_real_alert_at_the_detection_and_age_edges(tables, model):
    table = tables["part-2-918301.avro"]
    result = run(table, model)
    i = next(i for i in np.flatnonzero(result.status == "ok") if len(table["cmidpointMjdTai"][i]) > MIN_DETECTIONS)
    base = {c: [table[c][i]] * 3 for c in CLASSIFIER_INPUTS}
    keep = MIN_DETECTIONS - 1  # the last detections: the diaSource stays the alert's epoch
    for c in ("cmidpointMjdTai", "cpsfFlux", "cpsfFluxErr", "cband"):
        base[c][1] = table[c][i][-keep:]
    now = table["cmidpointMjdTai"][i][-1]
    base["diaObject_firstDiaSourceMjdTai"] = [now - MAX_AGE_DAYS, now, now - MAX_AGE_DAYS - 1]
    edges = classify(base, model)
    assert edges.status.tolist() == ["ok", "too_few_detections", "too_old"]


def test_bad_values_are_skipped_or_malformed_never_raised(tables, model):
    table = tables["part-2-918301.avro"]
    good = run(table, model)
    i = next(i for i in np.flatnonzero(good.status == "ok") if table["fpsfFlux"][i] is not None)
    cols = columns(table)
    bad = {c: [] for c in CLASSIFIER_INPUTS}

    def add(**changes):
        for c in CLASSIFIER_INPUTS:
            bad[c].append(changes.get(c, cols[c][i]))
    n_points = len(cols["cmidpointMjdTai"][i])
    nan_flux = np.array(cols["cpsfFlux"][i], dtype=float)
    nan_flux[:-1] = np.nan
    add(cpsfFlux=nan_flux)                                            # NaN fluxes: too few usable detections
    add(cmidpointMjdTai=None, cpsfFlux=None, cpsfFluxErr=None, cband=None)  # null history
    add(cmidpointMjdTai=[], cpsfFlux=[], cpsfFluxErr=[], cband=[])    # empty history
    add(cband=["w"] * n_points)                                        # unknown band
    add(cpsfFluxErr=[0.0] * n_points)                                  # no positive error
    add(cpsfFlux=["x"] * n_points)                                     # strings where numbers are due
    add(cpsfFlux=list(cols["cpsfFlux"][i])[:-1])                       # arrays of different lengths
    add(fpsfFlux=[1.0])                                                # forced photometry of different lengths
    add(cmidpointMjdTai=3.5)                                           # a scalar where an array is due
    add(fmidpointMjdTai=None, fpsfFlux=None, fpsfFluxErr=None, fband=None)  # no forced photometry: classified
    add(ssObjectId="junk", ssSource_ssObjectId=np.nan, diaObject_firstDiaSourceMjdTai="later")
    add(cmidpointMjdTai=[np.nan] * n_points)
    result = classify(bad, model)
    check_consistent(result, 14)
    assert result.status.tolist() == ["too_few_detections"] * 6 + ["malformed_history"] * 3 + ["ok"] * 2 + [
        "too_few_detections"]
    assert not np.allclose(result.proba[9], good.proba[i]), "the forced photometry is part of the model's input"
    np.testing.assert_allclose(result.proba[10], good.proba[i], atol=1e-6)  # unreadable header values: as absent

    mixed = {c: cols[c] + bad[c] for c in CLASSIFIER_INPUTS}  # one batch: the bad alerts change no real alert's result
    together = classify(mixed, model)
    n = len(table)
    assert together.status[:n].tolist() == good.status.tolist()
    np.testing.assert_allclose(together.proba[:n], good.proba, atol=1e-6)
    assert together.status[n:].tolist() == result.status.tolist()


def test_a_nan_point_is_the_alert_without_it(tables, model):
    table = tables["part-2-918301.avro"]
    good = run(table, model)
    i = next(i for i in np.flatnonzero(good.status == "ok") if len(table["cmidpointMjdTai"][i]) > MIN_DETECTIONS + 1)
    cols = {c: [table[c][i], table[c][i]] for c in CLASSIFIER_INPUTS}
    flux = np.array(cols["cpsfFlux"][0], dtype=float)
    flux[0] = np.nan
    cols["cpsfFlux"][0] = flux
    for c in ("cmidpointMjdTai", "cpsfFlux", "cpsfFluxErr", "cband"):
        cols[c][1] = list(table[c][i])[1:]
    result = classify(cols, model)
    assert result.status.tolist() == ["ok", "ok"]
    np.testing.assert_allclose(result.proba[0], result.proba[1], atol=1e-6)


def test_empty_batch_and_all_rejected(model):
    empty = classify_rubin_columns(*([] for _ in CLASSIFIER_INPUTS), model)
    assert empty.proba.shape == (0, 14) and len(empty.status) == 0
    nothing = classify_rubin_columns(*([None] for _ in CLASSIFIER_INPUTS), model)
    assert nothing.status.tolist() == ["too_few_detections"] and (nothing.proba == REJECTED).all()


class Calibrated:
    """The shipped runner with a calibration in its contract (temperature 2, class offsets)."""

    def __init__(self, model):
        self.model, self.class_names = model, model.class_names
        offsets = [0.5] + [0.0] * (len(model.class_names) - 1)
        zeros = [0.0] * len(model.class_names)
        self.contract = {**model.contract, "calibration": {"temperature": 2.0, "class_offsets": offsets,
                                                           "channel_offsets": {"age": zeros, "log_ndethist": zeros}}}

    def predict(self, values):
        return self.model.predict(values)


def test_the_contracts_calibration_gives_the_probabilities_not_the_decision(tables, model):
    table = tables["elasticc_sample_seed0.parquet"]
    raw, calibrated = run(table, model), run(table, Calibrated(model))
    ok = raw.status == "ok"
    assert calibrated.status.tolist() == raw.status.tolist() and calibrated.label.tolist() == raw.label.tolist()
    assert np.allclose(calibrated.proba[ok].sum(axis=1), 1, atol=1e-3)
    assert not np.allclose(calibrated.proba[ok], raw.proba[ok], atol=1e-3)


def test_a_ztf_model_is_refused():
    with pytest.raises(ModelContractError, match="cannot classify Rubin alerts"):
        classify_rubin_columns(*([None] for _ in CLASSIFIER_INPUTS), load_model(ModelRef.resolve(DEFAULT_MODEL_PATH)))
