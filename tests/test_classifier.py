"""The core's one result (fink_t2.core.classifier.Classification) on real alerts: everything computed once."""

import numpy as np
import pandas as pd
import pytest

from fink_t2.alerts import iter_alert_tables
from fink_t2.core.calibration import calibrated_probabilities, now_features
from fink_t2.core.classifier import NOT_COUNTED, classify_columns, classify_ragged
from fink_t2.core.cuts import (
    MAX_AGE_DAYS,
    REJECTED,
    STATUS_MALFORMED,
    STATUS_OK,
    STATUS_TOO_OLD,
    cut_status,
    header_status,
)
from fink_t2.core.sequences import build_sequences, flatten_ragged
from fink_t2.paths import SAMPLE_NIGHT
from fink_t2.runtime.inference import load_model
from fink_t2.runtime.model_ref import ModelRef


@pytest.fixture(scope="module")
def night() -> pd.DataFrame:
    return pd.concat([t.to_pandas() for t in iter_alert_tables(SAMPLE_NIGHT)], ignore_index=True)


@pytest.fixture(scope="module")
def model():
    return load_model(ModelRef.resolve())


def _columns(df):
    return df.cjd, df.cfid, df.cmagpsf, df.cisdiffpos, df.roid, df.cdsxmatch, df.jdstarthist, df.ndethist


def test_the_result_carries_what_each_caller_needs(night, model):
    result = classify_columns(*_columns(night), model)
    ok = result.status == STATUS_OK
    assert 0 < ok.sum() < len(night)  # real alerts: some classified (3 of 124), most rejected
    seq = build_sequences(list(night.cjd), list(night.cfid), list(night.cmagpsf), list(night.cisdiffpos),
                          jdstarthist=night.jdstarthist.to_numpy(float), ndethist=night.ndethist.to_numpy(float))
    # the detections counted, the raw output, the probabilities and the decision: what nobody recomputes
    assert (result.n_detections[ok] == seq.n_detections[ok]).all()
    header = header_status(night.roid, night.cdsxmatch, [c[-1] for c in night.cjd], night.jdstarthist)
    assert (result.n_detections[header != STATUS_OK] == NOT_COUNTED).all()
    output = model.predict(seq.values[ok])
    np.testing.assert_allclose(result.output[ok], output, atol=1e-6)
    np.testing.assert_allclose(result.last_node[ok], seq.values[ok, -1, :])
    calibrated = calibrated_probabilities(output, now_features(seq.values[ok]), model.contract.get("calibration"))
    np.testing.assert_allclose(result.proba[ok], calibrated, atol=1e-6)
    assert (result.decision[ok] == output.argmax(axis=1)).all() and (result.decision[~ok] == -1).all()
    assert list(result.label[ok]) == [model.class_names[i] for i in output.argmax(axis=1)]
    assert (result.output[~ok] == REJECTED).all() and (result.proba[~ok] == REJECTED).all()
    proba, status = result  # unpacks and indexes as the (proba, status) pair it was
    assert proba is result.proba and status is result.status and result[1] is status
    # the cuts, each run once, decide as all of them in one call
    assert (result.status == cut_status(seq.n_epochs, night.roid, night.cdsxmatch, [c[-1] for c in night.cjd],
                                        night.jdstarthist, age=seq.age_days)).all()


def test_counting_every_alert_changes_no_decision(night, model):
    plain = classify_columns(*_columns(night), model)
    ragged = [flatten_ragged(list(night.cjd)), flatten_ragged(list(night.cfid)), flatten_ragged(list(night.cmagpsf)),
              flatten_ragged(list(night.cisdiffpos), dtype=object)]
    counted = classify_ragged(*ragged, night.roid, night.cdsxmatch, night.jdstarthist, night.ndethist, model,
                              count_rejected=True)
    assert (counted.status == plain.status).all() and (counted.n_detections >= 0).all()
    np.testing.assert_array_equal(counted.proba, plain.proba)


def test_a_detection_older_than_jdstarthist_makes_the_alert_too_old(night, model):
    ok = night[classify_columns(*_columns(night), None).status == STATUS_OK].iloc[:1].copy()
    first = float(ok.cjd.iloc[0][0])
    ok["cjd"] = [np.r_[first - MAX_AGE_DAYS - 5, ok.cjd.iloc[0]]]  # a detection far older than the window
    for name in ("cfid", "cmagpsf", "cisdiffpos"):
        ok[name] = [np.r_[ok[name].iloc[0][-1:], ok[name].iloc[0]]]  # as the current detection
    result = classify_columns(*_columns(ok), model)
    assert list(result.status) == [STATUS_TOO_OLD] and result.label[0] is None


def test_a_malformed_history_is_rejected_alone(night, model):
    bad = night.copy()
    bad.at[0, "cfid"] = bad.cfid.iloc[0][:-1]  # one entry short
    result = classify_columns(*_columns(bad), model)
    good = classify_columns(*_columns(night), model)
    assert result.status[0] == STATUS_MALFORMED and result.n_detections[0] == NOT_COUNTED
    assert (result.proba[0] == REJECTED).all() and result.label[0] is None
    assert (result.status[1:] == good.status[1:]).all()
    np.testing.assert_array_equal(result.proba[1:], good.proba[1:])
