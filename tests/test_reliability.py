"""Never lose an alert: bad values, bad files, schema evolution, bad command lines (docs/reliability.md).

Every fault ends either in an alert with all scores -1 and a ``t2_status`` reason, or in a
row / summary entry for an unreadable file (its bytes kept in ``OUTPUT/_unreadable/``), or in
a one-line error before anything is written. Alerts in == alerts out + reported rejects.
"""

from __future__ import annotations

import copy
import io
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import fastavro
import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F
from pyspark.sql.conversion import PandasToArrowConversion
from pyspark.sql.types import FloatType, MapType, StringType, StructField, StructType

from fink_t2.alerts import iter_alert_tables, iter_alerts, read_tarball, records_to_table
from fink_t2.contract import attach_contract, read_contract, strip_contract
from fink_t2.classifier import classify_columns
from fink_t2.cuts import (
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
from fink_t2.inference import load_model
from fink_t2.model_ref import DEFAULT_MODEL_PATH
from fink_t2.processor import DEFAULT_MODEL, maxclass, t2, t2_status
from fink_t2.samples import SAMPLE_NIGHT, SHARED_DATA
from fink_t2.sequences import build_sequences
from fink_t2.stream import RUN_MARKER, UNREADABLE_DIR, decode_file, load_alerts, replay, stage_tarball, with_t2

AVRO_NIGHT = Path(SHARED_DATA) / "ztf_alerts" / "night_20200101_avro"
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


def test_udfs_on_an_empty_arrow_batch():
    empty = [pd.Series([], dtype=object)] * 4 + [pd.Series([], dtype="int32"), pd.Series([], dtype=object),
                                                 pd.Series([], dtype=float), pd.Series([], dtype="int32")]
    scores, status = t2.func(*empty), t2_status.func(*empty)
    classes = maxclass.func(scores)
    assert len(scores) == len(status) == len(classes) == 0
    for series, dtype in ((scores, MapType(StringType(), FloatType())), (status, StringType()), (classes, StringType())):
        for legacy in (True, False):  # pyspark's own pandas → Arrow conversion of the UDF result
            batch = PandasToArrowConversion.convert([series], StructType([StructField("x", dtype)]), is_legacy=legacy)
            assert batch.num_rows == 0


@pytest.mark.slow
def test_udfs_on_a_batch_where_no_alert_passes_the_cuts(spark):
    df = load_alerts(spark, SAMPLE_NIGHT).withColumn("cdsxmatch", F.lit("Star"))
    rows = with_t2(df).select("t2", "t2_status", "t2_class").collect()
    assert len(rows) == 124
    # the first cut failed is reported: the known asteroid of the night, then the cross-match for all others
    assert {r.t2_status for r in rows} == {STATUS_ASTEROID, STATUS_GALACTIC}
    assert all(set(r.t2.values()) == {REJECTED} and r.t2_class is None for r in rows)


# --- bad files: corrupt, empty, truncated; ZTF schema 3.3 and 4.x in one night ----------------------------


def _writer_schema(path: Path) -> dict:
    return fastavro.reader(io.BytesIO(path.read_bytes())).writer_schema


def _to_avro(record: dict, schema: dict) -> bytes:
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(copy.deepcopy(schema)), [record])
    return buffer.getvalue()


def _schema_4x(schema: dict) -> dict:
    """ZTF 3.3 writer schema made 4.x-like: new version, an added candidate field with a default,
    a removed optional candidate field (ssnamenr) and ZTF 4's top-level forced-photometry history."""
    schema = copy.deepcopy(schema)
    candidate = next(f for f in schema["fields"] if f["name"] == "candidate")["type"]
    candidate["version"] = "4.02"
    candidate["fields"] = [f for f in candidate["fields"] if f["name"] != "ssnamenr"]
    candidate["fields"].append({"name": "new_in_4x", "type": ["null", "float"], "default": None})
    fp = {"type": "record", "name": "fp_hist", "fields": [
        {"name": "jd", "type": "double"}, {"name": "forcediffimflux", "type": ["null", "float"], "default": None}]}
    schema["fields"].insert(6, {"name": "fp_hists", "type": ["null", {"type": "array", "items": fp}], "default": None})
    return schema


def _as_avro_record(record: dict, version: str) -> dict:
    """A Fink science-stage record back into a ZTF alert record (what the nightly archive holds)."""
    return {"schemavsn": version, "publisher": "ZTF (University of Washington)", "objectId": record["objectId"],
            "candid": record["candid"], "candidate": dict(record["candidate"]), "prv_candidates": record["prv_candidates"],
            "cutoutScience": None, "cutoutTemplate": None, "cutoutDifference": None}


@pytest.fixture(scope="module")
def classified_records() -> list[dict]:
    """Real alerts that pass the cuts once read from Avro (no Fink roid/cdsxmatch columns)."""
    records = [{k: v for k, v in r.items() if k not in ("roid", "cdsxmatch")} for r in iter_alerts(SAMPLE_NIGHT)]
    _, status = _classify(records_to_table(records).to_pandas())
    chosen = [r for r, s in zip(records, status) if s == STATUS_OK]
    assert len(chosen) >= 2
    return chosen


@pytest.fixture(scope="module")
def mixed_night(tmp_path_factory, classified_records) -> dict:
    """A night folder: 10 real 3.3 alerts, one more 3.3 and one 4.x alert that pass the cuts,
    a truncated Avro file, garbage bytes with an Avro name, and an empty file."""
    night = tmp_path_factory.mktemp("mixed") / "night"
    night.mkdir()
    real = sorted(AVRO_NIGHT.glob("*.avro"))[:10]
    for path in real:
        (night / path.name).write_bytes(path.read_bytes())
    schema = _writer_schema(real[0])
    v33, v4 = classified_records[0], classified_records[1]
    (night / "alert_33.avro").write_bytes(_to_avro(_as_avro_record(v33, "3.3"), schema))
    record4 = _as_avro_record(v4, "4.02")
    record4["candidate"].pop("ssnamenr")
    record4["candidate"]["new_in_4x"] = 0.5
    record4["fp_hists"] = [{"jd": v4["candidate"]["jd"] - 1, "forcediffimflux": 12.5}]
    (night / "alert_4x.avro").write_bytes(_to_avro(record4, _schema_4x(schema)))
    truncated = real[0].read_bytes()
    bad = {"truncated.avro": truncated[: len(truncated) // 2], "garbage.avro": b"Obj\x01" + bytes(range(256)) * 8,
           "empty.avro": b""}
    for name, data in bad.items():
        (night / name).write_bytes(data)
    candids = [fastavro.reader(io.BytesIO(p.read_bytes())).__next__()["candid"] for p in real] + [v33["candid"], v4["candid"]]
    return {"path": night, "bad": bad, "candids": candids, "v4": v4, "v33": v33}


@pytest.fixture(scope="module")
def mixed_replay(spark, mixed_night, tmp_path_factory) -> dict:
    out = tmp_path_factory.mktemp("mixed_out") / "out"
    summary = replay(str(mixed_night["path"]), str(out))
    return {"out": out, "summary": summary, "df": spark.read.parquet(str(out)).toPandas(), **_split(spark, out)}


def _split(spark, out) -> dict:
    """Alert rows and unreadable-file rows of an output (split in Spark: a null candid would make pandas use floats)."""
    df = spark.read.parquet(str(out))
    return {"good": df.where(F.col("ingest_error").isNull()).toPandas(), "errors": df.where(F.col("ingest_error").isNotNull()).toPandas()}


def test_decode_file_turns_bad_bytes_into_one_row_with_the_error():
    real = sorted(AVRO_NIGHT.glob("*.avro"))[0].read_bytes()
    for name, data in {"a.avro": real[: len(real) // 2], "b.avro": b"", "c.avro": b"Obj\x01xyz", "d.parquet": b"PAR1"}.items():
        table = decode_file(name, data)
        assert table.num_rows == 1 and table.column("candid").null_count == 1
        assert table.column("source_file").to_pylist() == [name] and table.column("ingest_error")[0].as_py()


def test_schema_33_and_4x_alerts_decode_alike(mixed_night):
    table4 = decode_file("x.avro", (mixed_night["path"] / "alert_4x.avro").read_bytes())
    table33 = records_to_table([mixed_night["v4"]])
    row4, row33 = table4.to_pylist()[0], table33.to_pylist()[0]
    assert row4.pop("ingest_error") is None and row4.pop("source_file") == "x.avro"
    assert row4["ssnamenr"] is None  # removed from the 4.x schema: null, no KeyError
    row33["ssnamenr"], row33["roid"], row33["cdsxmatch"] = None, row4["roid"], row4["cdsxmatch"]
    assert row4 == row33


@pytest.mark.slow
def test_mixed_night_every_alert_out_every_bad_file_reported_and_kept(mixed_night, mixed_replay):
    df, summary, out = mixed_replay["df"], mixed_replay["summary"], mixed_replay["out"]
    good, errors = mixed_replay["good"], mixed_replay["errors"]
    # alerts in == alerts out (+ one row per undecodable file; the empty file is in the summary only)
    assert sorted(good.candid) == sorted(mixed_night["candids"]) and good.candid.is_unique
    assert sorted(Path(f).name for f in errors.source_file) == ["garbage.avro", "truncated.avro"]
    assert (errors.t2_status == "unreadable_file").all() and all(set(m.values()) == {REJECTED} for m in errors.t2)
    assert summary["alerts_in_output"] == len(df) == len(mixed_night["candids"]) + 2
    assert summary["unreadable_files"] == 3 == len(summary["unreadable"])
    # every unreadable file is kept aside, byte for byte, and listed
    kept = {Path(e["source"]).name: e for e in summary["unreadable"]}
    assert set(kept) == set(mixed_night["bad"])
    for name, data in mixed_night["bad"].items():
        assert (out / UNREADABLE_DIR / kept[name]["kept_as"]).read_bytes() == data
    assert json.loads((out / UNREADABLE_DIR / "index.json").read_text()) == sorted(summary["unreadable"], key=lambda e: e["source"])
    # the 3.3 and 4.x alerts that pass the cuts are classified as the pandas path does
    for key in ("v33", "v4"):
        record = mixed_night[key]
        row = good[good.candid == record["candid"]].iloc[0]
        proba, status = _classify(records_to_table([{k: v for k, v in record.items() if k not in ("roid", "cdsxmatch")}]).to_pandas())
        assert row.t2_status == status[0] == STATUS_OK
        for name, p in dict(row.t2).items():
            assert p == pytest.approx(float(proba[name][0]), abs=1e-5)
    assert good[good.candid == mixed_night["v4"]["candid"]].iloc[0].candidate["ssnamenr"] is None
    # the output folder now belongs to this night
    assert json.loads((out / RUN_MARKER).read_text())["input"] == str(mixed_night["path"])


@pytest.mark.slow
def test_rerun_of_the_mixed_night_adds_nothing(spark, mixed_night, mixed_replay):
    out = mixed_replay["out"]
    again = replay(str(mixed_night["path"]), str(out))
    assert again["alerts_processed_this_run"] == 0 and again["alerts_in_output"] == mixed_replay["summary"]["alerts_in_output"]
    assert again["unreadable"] == mixed_replay["summary"]["unreadable"]
    assert len(list((out / UNREADABLE_DIR).iterdir())) == 4  # 3 files + index.json, not copied twice


def _tarball(path: Path, members: list[tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.fixture(scope="module")
def damaged_tarball(tmp_path_factory) -> dict:
    """A gzip nightly tarball with one corrupt member, cut at 60%: alerts before the cut are recoverable."""
    folder = tmp_path_factory.mktemp("tarball")
    files = sorted(AVRO_NIGHT.glob("*.avro"))[:12]
    members = [(f"20200101/{p.name}", p.read_bytes()) for p in files]
    members.insert(2, ("20200101/corrupt.avro", b"Obj\x01 not an alert"))
    whole = _tarball(folder / "whole.tar.gz", members).read_bytes()
    path = folder / "ztf_public_20200101.tar.gz"
    path.write_bytes(whole[: int(len(whole) * 0.6)])
    errors = []
    readable = [a["candid"] for a in read_tarball(path, on_error=lambda name, data, err: errors.append((name, data)))]
    assert 0 < len(readable) < 12 and [e[0] for e in errors] == ["20200101/corrupt.avro", None]
    with pytest.raises(Exception):  # without on_error a damaged archive still raises, as before
        list(read_tarball(path))
    return {"path": path, "readable": readable}


def test_staging_a_damaged_tarball_keeps_what_was_read_and_records_the_damage(damaged_tarball, tmp_path):
    staged = Path(stage_tarball(str(damaged_tarball["path"]), str(tmp_path)))
    assert (staged / "_DONE").exists()
    tables = [pa.parquet.read_table(p) for p in sorted(staged.glob("chunk-*.parquet"))]
    alerts = pa.concat_tables([t.select(["candid"]) for t in tables if "ingest_error" not in t.column_names])
    assert alerts.column("candid").to_pylist() == damaged_tarball["readable"]
    errors = [t for t in tables if "ingest_error" in t.column_names][0].to_pylist()
    assert [Path(e["source_file"]).name for e in errors] == ["corrupt.avro", damaged_tarball["path"].name]
    assert "damaged" in errors[1]["ingest_error"]
    assert (staged / "_unreadable" / "corrupt.avro").read_bytes() == b"Obj\x01 not an alert"


@pytest.mark.slow
def test_replay_of_a_truncated_tarball_does_not_crash_and_reports_the_damage(spark, damaged_tarball, tmp_path):
    out = tmp_path / "out"
    summary = replay(str(damaged_tarball["path"]), str(out))
    good = _split(spark, out)["good"]
    assert sorted(good.candid) == sorted(damaged_tarball["readable"]) and good.candid.is_unique
    assert summary["unreadable_files"] == 2 and summary["alerts_in_output"] == len(damaged_tarball["readable"]) + 2
    kept = {Path(e["source"]).name: e["kept_as"] for e in summary["unreadable"]}
    assert (out / UNREADABLE_DIR / kept["corrupt.avro"]).read_bytes() == b"Obj\x01 not an alert"
    assert (out / UNREADABLE_DIR / kept[damaged_tarball["path"].name]).read_bytes() == damaged_tarball["path"].read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["empty folder", "empty tarball", "zero-byte tarball"])
def test_a_night_with_zero_alerts(spark, tmp_path, kind):
    if kind == "empty folder":
        night = tmp_path / "night"
        night.mkdir()
    elif kind == "empty tarball":
        night = _tarball(tmp_path / "ztf_public_20200102.tar.gz", [])
    else:
        night = tmp_path / "ztf_public_20200103.tar.gz"
        night.write_bytes(b"")
    summary = replay(str(night), str(tmp_path / "out"))
    assert summary["classified"] == 0 and summary["rejected_by_cuts"] == {}
    if kind == "zero-byte tarball":  # an unreadable file: one row, kept aside
        assert summary["alerts_in_output"] == summary["unreadable_files"] == 1
    else:
        assert summary["alerts_in_output"] == summary["unreadable_files"] == 0 and summary["unreadable"] == []


# --- the command line refuses bad paths, another night's output folder and bad models ----------------------


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "fink_t2.cli", "replay", *map(str, args)],
                          capture_output=True, text=True, timeout=timeout)


def _snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(folder.rglob("*")) if p.is_file()}


def _assert_refused(proc, *words):
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("fink-t2 replay: error:"), proc.stderr
    assert all(w in lines[0] for w in words), lines[0]


@pytest.mark.slow
def test_cli_refuses_an_output_folder_holding_another_night(mixed_replay):
    out = mixed_replay["out"]
    before = _snapshot(out)
    proc = _cli(SAMPLE_NIGHT, "--output", out)
    _assert_refused(proc, "holds the results of", "use another output folder")
    assert _snapshot(out) == before


def test_cli_refuses_a_non_empty_folder_that_is_not_a_replay_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    before = _snapshot(out)
    _assert_refused(_cli(SAMPLE_NIGHT, "--output", out), RUN_MARKER)
    assert _snapshot(out) == before


def _model_variant(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / f"{kind}.tflite"
    contract = read_contract(DEFAULT_MODEL_PATH)
    bare = strip_contract(DEFAULT_MODEL_PATH)
    if kind == "not_a_model":
        path.write_bytes(b"this is not a model\n" * 10)
    elif kind == "no_contract":
        path.write_bytes(bare)
    elif kind == "other_preprocessing":
        path.write_bytes(attach_contract(bare, {**contract, "preprocessing_version": "t2-gp-v0"}))
    elif kind == "class_list_mismatch":
        path.write_bytes(attach_contract(bare, {**contract, "class_names": contract["class_names"][:2]}))
    elif kind == "missing":
        pass
    elif kind == "renamed_classes":
        path.write_bytes(attach_contract(bare, {**contract, "class_names": [f"class {c}" for c in contract["class_names"]]}))
    return path


@pytest.mark.parametrize(
    "kind, words",
    [
        ("not_a_model", ["not a fink-t2 model"]),
        ("no_contract", ["not a fink-t2 model"]),
        ("other_preprocessing", ["preprocessing_version"]),
        ("class_list_mismatch", ["outputs", "class names"]),
        ("missing", ["does not exist"]),
    ],
)
def test_cli_refuses_a_bad_model_before_writing_anything(tmp_path, kind, words):
    model = _model_variant(tmp_path, kind)
    _assert_refused(_cli(SAMPLE_NIGHT, "--output", tmp_path / "new", "--model", model), model.name, *words)
    assert not (tmp_path / "new").exists()
    # an existing output of the same night is left untouched too
    out = tmp_path / "existing"
    out.mkdir()
    (out / RUN_MARKER).write_text(json.dumps({"input": SAMPLE_NIGHT}))
    before = _snapshot(out)
    _assert_refused(_cli(SAMPLE_NIGHT, "--output", out, "--model", model), *words)
    assert _snapshot(out) == before


@pytest.mark.slow
def test_model_option_reaches_the_python_workers(spark, tmp_path):
    """A valid model whose contract names other classes: the output maps use those names, so the workers ran it
    (the CLI's --model goes to the same argument; the tests above show the CLI checks it)."""
    model = _model_variant(tmp_path, "renamed_classes")
    night = tmp_path / "night"
    night.mkdir()
    for path in sorted(AVRO_NIGHT.glob("*.avro"))[:3]:
        (night / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "out"
    assert replay(str(night), str(out), model=str(model))["alerts_in_output"] == 3
    keys = {tuple(sorted(m)) for m in spark.read.parquet(str(out)).toPandas().t2.map(dict)}
    assert keys == {tuple(sorted(read_contract(model)["class_names"]))}
    run = json.loads((out / RUN_MARKER).read_text())
    assert run["input"] == str(night) and run["model"] == str(model)
