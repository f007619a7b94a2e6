"""Bad values in an alert never crash the science module nor lose the alert (docs/reliability.md).

Every fault ends in an alert with all scores -1 and a ``t2_status`` reason, or in scores: property
tests (hypothesis) over absurd values, named cases built from the real alerts of the sample night,
and the UDFs on an empty Arrow batch and on a batch where no alert passes the cuts.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F
from pyspark.sql.types import FloatType, MapType, StringType, StructField, StructType

from fink_t2.alerts import iter_alert_tables, iter_alerts, records_to_table
from fink_t2.alerts.binaryfile import load_alerts
from fink_t2.core.classifier import classify_columns
from fink_t2.core.cuts import (
    ASTEROID_ROID,
    EXTRAGALACTIC_XMATCH,
    MAX_AGE_DAYS,
    MIN_EPOCHS,
    REJECTED,
    STATUS_ASTEROID,
    STATUS_FEW_DETECTIONS,
    STATUS_GALACTIC,
    STATUS_MALFORMED,
    STATUS_OK,
    STATUS_TOO_OLD,
)
from fink_t2.core.sequences import build_sequences
from fink_t2.paths import SAMPLE_NIGHT
from fink_t2.processor import DEFAULT_MODEL, maxclass, t2, t2_status
from fink_t2.runtime.inference import load_model
from fink_t2.stream.replay import with_t2

STATUSES = {STATUS_OK, STATUS_FEW_DETECTIONS, STATUS_ASTEROID, STATUS_GALACTIC, STATUS_TOO_OLD, STATUS_MALFORMED}
COLUMNS = ("cjd", "cfid", "cmagpsf", "cisdiffpos", "roid", "cdsxmatch", "jdstarthist", "ndethist")
HISTORY = ("cjd", "cfid", "cmagpsf", "cisdiffpos")


def _classify(df):
    proba, status = classify_columns(*(df[c] for c in COLUMNS), model=load_model(DEFAULT_MODEL))
    return pd.DataFrame(proba, columns=list(DEFAULT_MODEL.class_names)), status


def _sequences_and_status(df):
    """The model input the core builds for each alert (as classify_columns does) and the status."""
    _, status = classify_columns(*(df[c] for c in COLUMNS), model=None)
    now = [np.nan if a is None or len(a) == 0 else a[-1] for a in df.cjd]
    seq = build_sequences(*(df[c] for c in HISTORY), jd_now=now,
                          jdstarthist=pd.to_numeric(df.jdstarthist, errors="coerce"),
                          ndethist=pd.to_numeric(df.ndethist, errors="coerce"))
    return seq, status


def _assert_contract(proba, status):
    """The -1 contract: rejected rows are all -1, classified rows are probabilities."""
    assert len(proba) == len(status)
    assert set(status) <= STATUSES
    values = proba.to_numpy()
    ok = np.asarray(status) == STATUS_OK
    assert (values[~ok] == REJECTED).all()
    assert np.isfinite(values[ok]).all() and (values[ok] >= 0).all()
    np.testing.assert_allclose(values[ok].sum(axis=1), 1.0, atol=1e-3)


@pytest.fixture(scope="module")
def alerts() -> pd.DataFrame:
    """The 124 real alerts of the sample night as the UDFs see them (numpy arrays per row)."""
    return pd.concat([t.to_pandas() for t in iter_alert_tables(SAMPLE_NIGHT)], ignore_index=True)


@pytest.fixture(scope="module")
def ok_alerts(alerts) -> pd.DataFrame:
    _, status = _classify(alerts)
    ok = alerts[status == STATUS_OK].reset_index(drop=True)
    assert len(ok) >= 3
    return ok


def _map_rows(df, column, fn):
    df = df.copy()
    df[column] = [fn(np.asarray(v).copy()) for v in df[column]]
    return df


# --- property tests: whatever the values, no crash, the -1 contract, one alert never affects another --------

SPECIAL = [np.nan, np.inf, -np.inf, None, 0.0, -1.0, 1e300, -1e300]
_jd = st.one_of(st.floats(2458000.0, 2458200.0), st.floats(2458000.0, 2458200.0), st.sampled_from(SPECIAL))
_fid = st.one_of(st.sampled_from([1, 2]), st.sampled_from([1, 2, 3, 0, -1, None]))
_mag = st.one_of(st.floats(14.0, 22.0), st.floats(14.0, 22.0), st.sampled_from(SPECIAL + [99.0, -5.0, 4.0, 31.0]))
_sign = st.one_of(st.just("t"), st.sampled_from(["t", "f", "1", "0", None, ""]))


@st.composite
def light_curve(draw):
    """One alert's columns: arrays of one length (or null), in any order, with nulls and absurd values."""
    n = draw(st.integers(0, 10))
    jd, fid, mag, sign = (draw(st.lists(s, min_size=n, max_size=n)) for s in (_jd, _fid, _mag, _sign))
    kind = draw(st.sampled_from(["numpy", "list", "object"]))

    def wrap(values, dtype):
        if kind == "list":
            return list(values)
        if kind == "object" or dtype is object:
            return np.array(values, dtype=object)
        return np.array([np.nan if v is None else v for v in values], dtype=dtype)

    finite = [v for v in jd if v is not None and np.isfinite(v)]
    jdstarthist = draw(st.one_of(
        st.just(np.nan),
        st.floats(-200.0, 5.0).map(lambda d: (min(finite) if finite else 2458000.0) - d),
    ))
    row = {
        "cjd": wrap(jd, np.float64),
        "cfid": wrap(fid, np.float64),
        "cmagpsf": wrap(mag, np.float64),
        "cisdiffpos": np.array(sign, dtype=object),
        "roid": draw(st.sampled_from([0, 0, 1, 2, ASTEROID_ROID])),
        "cdsxmatch": draw(st.sampled_from(["Unknown", "Unknown", "Star", "SN", "galaxy", "", None])),
        "jdstarthist": jdstarthist,
        "ndethist": draw(st.sampled_from([np.nan, 0, 1, 5, 500])),
    }
    if n == 0 and draw(st.booleans()):  # a null history, as Spark gives a null array
        row.update(cjd=None, cfid=None, cmagpsf=None, cisdiffpos=None)
    return row


def _frame(rows):
    dtypes = {"roid": float, "jdstarthist": float, "ndethist": float}  # as Spark's Arrow batches give them (int with nulls: float)
    return pd.DataFrame({c: pd.Series([r[c] for r in rows], dtype=dtypes.get(c, object)) for c in COLUMNS})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(light_curve(), min_size=0, max_size=6))
def test_any_values_give_scores_or_a_reason_never_an_error(rows):
    df = _frame(rows)
    proba, status = _classify(df)
    assert len(proba) == len(df)
    _assert_contract(proba, status)
    seq, status2 = _sequences_and_status(df)
    assert list(status2) == list(status) == list(t2_status.func(*(df[c] for c in COLUMNS)))
    assert np.isfinite(seq.values).all()
    assert seq.values[..., :2].min(initial=0) >= 0 and seq.values[..., :2].max(initial=0) <= 1 + 1e-6
    for i, row in enumerate(rows):
        if status[i] != STATUS_OK:
            continue
        # what "ok" promises: enough distinct epochs in the window, recent, not an asteroid, extragalactic
        assert seq.n_epochs[i] >= MIN_EPOCHS and seq.age_days[i] <= MAX_AGE_DAYS
        assert row["cjd"][-1] - row["jdstarthist"] <= MAX_AGE_DAYS
        assert row["roid"] != ASTEROID_ROID and row["cdsxmatch"] in EXTRAGALACTIC_XMATCH
        # one alert never changes another's result: alone it gets the same answer as in the batch
        alone, alone_status = _classify(df.iloc[[i]].reset_index(drop=True))
        assert alone_status[0] == STATUS_OK
        np.testing.assert_allclose(alone.to_numpy()[0], proba.to_numpy()[i], atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(st.lists(light_curve(), min_size=1, max_size=4), st.randoms(use_true_random=False))
def test_history_order_does_not_matter(rows, rnd):
    """Unsorted jd: shuffling the history (the current detection stays last) changes nothing."""
    df = _frame(rows)
    shuffled = df.copy()
    for i in range(len(df)):
        if df.cjd[i] is None or len(df.cjd[i]) < 2:
            continue
        order = list(range(len(df.cjd[i]) - 1))
        rnd.shuffle(order)
        order.append(len(df.cjd[i]) - 1)
        for c in HISTORY:
            shuffled.at[i, c] = np.asarray(df[c][i], dtype=object)[order]
    proba, status = _classify(df)
    proba2, status2 = _classify(shuffled)
    assert list(status) == list(status2)
    np.testing.assert_allclose(proba.to_numpy(), proba2.to_numpy(), atol=1e-5)


# --- named cases built from the real alerts ----------------------------------------------------------------


def test_the_real_alerts_the_faults_start_from_pass_the_cuts(ok_alerts):
    proba, status = _classify(ok_alerts)
    assert (status == STATUS_OK).all()
    _assert_contract(proba, status)


@pytest.mark.parametrize("missing", [np.nan, None])
def test_null_or_nan_magpsf_in_history_is_an_upper_limit(ok_alerts, missing):
    """A NaN/null history magnitude counts as an upper limit: same result as without that point."""
    df = ok_alerts.copy()
    first_det = [int(np.flatnonzero(np.isfinite(m.astype(float)))[0]) for m in df.cmagpsf]
    masked = df.copy()
    masked["cmagpsf"] = [np.where(np.arange(len(m)) == k, missing, m).astype(object) for m, k in zip(df.cmagpsf, first_det)]
    dropped = df.copy()
    for c in HISTORY:
        dropped[c] = [np.delete(a, k) for a, k in zip(df[c], first_det)]
    p1, s1 = _classify(masked)
    p2, s2 = _classify(dropped)
    assert list(s1) == list(s2) == [STATUS_OK] * len(df)
    np.testing.assert_allclose(p1.to_numpy(), p2.to_numpy(), atol=1e-6)


def test_all_magnitudes_null_is_too_few_detections(ok_alerts):
    df = _map_rows(ok_alerts, "cmagpsf", lambda m: np.full(len(m), np.nan))
    proba, status = _classify(df)
    assert (status == STATUS_FEW_DETECTIONS).all() and (proba.to_numpy() == REJECTED).all()


@pytest.mark.parametrize("history", [None, []])
def test_null_or_empty_prv_candidates_is_a_single_detection(history):
    records = [dict(r, prv_candidates=history) for r in list(iter_alerts(SAMPLE_NIGHT))[:10]]
    df = records_to_table(records).to_pandas()
    assert all(len(a) == 1 for a in df.cjd)
    # pass the cuts checked before the light curve (cross-match, asteroid, age): only the history is at fault
    df["cdsxmatch"], df["roid"], df["jdstarthist"] = "Unknown", 0, [a[-1] for a in df.cjd]
    proba, status = _classify(df)
    assert (status == STATUS_FEW_DETECTIONS).all() and (proba.to_numpy() == REJECTED).all()


def test_unsorted_history_of_real_alerts(ok_alerts):
    rng = np.random.default_rng(3)
    shuffled = ok_alerts.copy()
    for i in range(len(shuffled)):
        order = np.r_[rng.permutation(len(shuffled.cjd[i]) - 1), len(shuffled.cjd[i]) - 1]
        for c in HISTORY:
            shuffled.at[i, c] = shuffled[c][i][order]
    p1, s1 = _classify(ok_alerts)
    p2, s2 = _classify(shuffled)
    assert list(s1) == list(s2)
    np.testing.assert_allclose(p1.to_numpy(), p2.to_numpy(), atol=1e-6)


def test_duplicate_jd_counts_once(ok_alerts, alerts):
    """Every point given twice: same sequence, same scores; one detection given twice is still one epoch."""
    doubled = ok_alerts.copy()
    for c in HISTORY:
        doubled[c] = [np.concatenate([a, a]) for a in ok_alerts[c]]
    p1, s1 = _classify(ok_alerts)
    p2, s2 = _classify(doubled)
    assert list(s1) == list(s2) == [STATUS_OK] * len(ok_alerts)
    np.testing.assert_allclose(p1.to_numpy(), p2.to_numpy(), atol=1e-6)
    # a single detection duplicated (same jd): still too few, not a 2-point light curve
    single = ok_alerts.copy()
    for c in HISTORY:
        single[c] = [np.array([a[-1], a[-1]], dtype=a.dtype) for a in ok_alerts[c]]
    _, status = _classify(single)
    assert (status == STATUS_FEW_DETECTIONS).all()


def test_i_band_only_is_too_few_detections(ok_alerts):
    proba, status = _classify(_map_rows(ok_alerts, "cfid", lambda f: np.full(len(f), 3)))
    assert (status == STATUS_FEW_DETECTIONS).all() and (proba.to_numpy() == REJECTED).all()


def test_one_band_only_is_classified_with_the_other_channel_empty(ok_alerts):
    df = _map_rows(ok_alerts, "cfid", lambda f: np.where(f == 1, 2, f))  # every g point relabelled r
    proba, status = _classify(df)
    seq, _ = _sequences_and_status(df)
    assert (status == STATUS_OK).all()
    _assert_contract(proba, status)
    assert not seq.values[:, :, 2].any() and (seq.values[:, :, 0] == 0).all() and seq.values[:, :, 3].any(axis=1).all()


@pytest.mark.parametrize("absurd", [99.0, -5.0, 0.0, 1e300, np.inf, -np.inf])
def test_absurd_magnitudes_are_ignored_like_upper_limits(ok_alerts, absurd):
    k = [int(np.flatnonzero(np.isfinite(m))[0]) for m in ok_alerts.cmagpsf]
    bad = ok_alerts.copy()
    bad["cmagpsf"] = [np.where(np.arange(len(m)) == i, absurd, m) for m, i in zip(ok_alerts.cmagpsf, k)]
    nan = ok_alerts.copy()
    nan["cmagpsf"] = [np.where(np.arange(len(m)) == i, np.nan, m) for m, i in zip(ok_alerts.cmagpsf, k)]
    p1, s1 = _classify(bad)
    p2, s2 = _classify(nan)
    assert list(s1) == list(s2)
    np.testing.assert_array_equal(p1.to_numpy(), p2.to_numpy())


def test_only_absurd_magnitudes_is_too_few_detections(ok_alerts):
    _, status = _classify(_map_rows(ok_alerts, "cmagpsf", lambda m: np.full(len(m), 99.0)))
    assert (status == STATUS_FEW_DETECTIONS).all()


def test_history_longer_than_the_window_is_too_old(ok_alerts):
    """A detection 200 days before the others: the first detection is at least that old, whatever jdstarthist says."""
    df = ok_alerts.copy()
    k = [int(np.flatnonzero(np.isfinite(m))[0]) for m in df.cmagpsf]
    df["cjd"] = [np.where(np.arange(len(jd)) == i, jd[i] - 200.0, jd) for jd, i in zip(df.cjd, k)]
    proba, status = _classify(df)  # jdstarthist left as it was (inconsistent with the history)
    assert (status == STATUS_TOO_OLD).all() and (proba.to_numpy() == REJECTED).all()
    df["jdstarthist"] = [jd.min() for jd in df.cjd]  # consistent: the age cut says the same
    assert (_classify(df)[1] == STATUS_TOO_OLD).all()


@pytest.mark.parametrize("jd", [-1e300, 0.0])
def test_absurd_old_jd_makes_the_alert_too_old(ok_alerts, jd):
    """An absurd jd in the history used to overflow the int cast and land in node 0: now it dates the alert."""
    k = [int(np.flatnonzero(np.isfinite(m))[0]) for m in ok_alerts.cmagpsf]
    df = ok_alerts.copy()
    df["cjd"] = [np.where(np.arange(len(a)) == i, jd, a) for a, i in zip(df.cjd, k)]
    proba, status = _classify(df)
    assert (status == STATUS_TOO_OLD).all() and (proba.to_numpy() == REJECTED).all()
    seq, _ = _sequences_and_status(df)
    assert (seq.age_days > MAX_AGE_DAYS).all() and np.isfinite(seq.values).all()


def test_a_detection_after_the_alert_epoch_is_ignored(ok_alerts):
    """A history point later than the alert itself (absurd jd 1e300) is not in what the alert saw."""
    k = [int(np.flatnonzero(np.isfinite(m))[0]) for m in ok_alerts.cmagpsf]
    df = ok_alerts.copy()
    df["cjd"] = [np.where(np.arange(len(a)) == i, 1e300, a) for a, i in zip(df.cjd, k)]
    dropped = ok_alerts.copy()
    for c in HISTORY:
        dropped[c] = [np.delete(a, i) for a, i in zip(ok_alerts[c], k)]
    p1, s1 = _classify(df)
    p2, s2 = _classify(dropped)
    assert list(s1) == list(s2)
    np.testing.assert_array_equal(p1.to_numpy(), p2.to_numpy())


def test_missing_optional_fields_become_nulls_and_a_reason():
    """Alerts whose candidate lacks optional fields (and with no Fink columns) are read, then rejected with a reason."""
    optional = ("jdstarthist", "sigmapsf", "ssdistnr", "ssnamenr", "ssmagnr", "isdiffpos", "diffmaglim", "ra", "dec")
    records = []
    for record in list(iter_alerts(SAMPLE_NIGHT))[:10]:
        record = {k: v for k, v in record.items() if k not in ("roid", "cdsxmatch")}
        record["candidate"] = {k: v for k, v in record["candidate"].items() if k not in optional}
        record["prv_candidates"] = [{k: v for k, v in p.items() if k not in optional} for p in record["prv_candidates"] or []]
        records.append(record)
    table = records_to_table(records)
    assert table.num_rows == 10 and table.column("jdstarthist").null_count == 10
    proba, status = _classify(table.to_pandas())
    assert set(status) <= {STATUS_TOO_OLD, STATUS_FEW_DETECTIONS} and (proba.to_numpy() == REJECTED).all()


def test_arrays_of_different_lengths_are_malformed_and_do_not_fail_the_batch(ok_alerts):
    df = pd.concat([ok_alerts, ok_alerts.head(1)], ignore_index=True)
    df.at[len(df) - 1, "cfid"] = df.cfid[len(df) - 1][:-1]
    proba, status = _classify(df)
    assert list(status) == [STATUS_OK] * len(ok_alerts) + [STATUS_MALFORMED]
    np.testing.assert_array_equal(proba.to_numpy()[:-1], _classify(ok_alerts)[0].to_numpy())
    assert (proba.to_numpy()[-1] == REJECTED).all()


# --- the UDFs on an empty Arrow batch and on a batch where no alert passes ---------------------------------


def _udf_result_batches(series: pd.Series, dtype) -> list:
    """pyspark's own pandas → Arrow conversion of a UDF result (pyspark 4.3: both of its paths; 3.4: its serializer's)."""
    try:
        from pyspark.sql.conversion import PandasToArrowConversion
    except ImportError:  # pyspark 3.4 has no pyspark.sql.conversion: its Python worker's serializer converts
        from pyspark.sql.pandas.serializers import ArrowStreamPandasUDFSerializer
        from pyspark.sql.pandas.types import to_arrow_type

        return [ArrowStreamPandasUDFSerializer("UTC", True, False)._create_batch([(series, to_arrow_type(dtype))])]
    schema = StructType([StructField("x", dtype)])
    return [PandasToArrowConversion.convert([series], schema, is_legacy=legacy) for legacy in (True, False)]


def test_udfs_on_an_empty_arrow_batch():
    empty = [pd.Series([], dtype=object)] * 4 + [pd.Series([], dtype="int32"), pd.Series([], dtype=object),
                                                 pd.Series([], dtype=float), pd.Series([], dtype="int32")]
    scores, status = t2.func(*empty), t2_status.func(*empty)
    classes = maxclass.func(scores)
    assert len(scores) == len(status) == len(classes) == 0
    for series, dtype in ((scores, MapType(StringType(), FloatType())), (status, StringType()), (classes, StringType())):
        batches = _udf_result_batches(series, dtype)
        assert batches and all(batch.num_rows == 0 for batch in batches)


@pytest.mark.slow
def test_udfs_on_a_batch_where_no_alert_passes_the_cuts(spark):
    df = load_alerts(spark, SAMPLE_NIGHT).withColumn("cdsxmatch", F.lit("Star"))
    rows = with_t2(df).select("t2", "t2_status", "t2_class").collect()
    assert len(rows) == 124
    # the first cut failed is reported: the known asteroid of the night, then the cross-match for all others
    assert {r.t2_status for r in rows} == {STATUS_ASTEROID, STATUS_GALACTIC}
    assert all(set(r.t2.values()) == {REJECTED} and r.t2_class is None for r in rows)
