"""fink-t2 classify: light-curve tables (real ZTF BTS curves) → one row of probabilities per object."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fink_t2.alerts import iter_alert_tables
from fink_t2.classify import MJD_TO_JD, classify_lightcurves, read_lightcurves
from fink_t2.cli import main
from fink_t2.core.calibration import calibrated_probabilities, now_features
from fink_t2.core.sequences import build_sequences
from fink_t2.paths import SHARED_DATA
from fink_t2.processor import T2_COLUMNS, t2_result_udf
from fink_t2.runtime.inference import load_model
from fink_t2.runtime.model_ref import ModelRef

BTS = Path(SHARED_DATA) / "ztf_bts" / "lightcurves.csv.gz"
assert BTS.is_file(), f"BTS light curves not found at {BTS}: set FINK_T2_DATA"  # fail, never skip


@pytest.fixture(scope="module")
def bts_subset():
    table = pd.read_csv(BTS)
    keep = table["objectId"].drop_duplicates().iloc[:150]
    table = table[table["objectId"].isin(keep)]
    # shuffled rows and an object with one detection, one with only upper limits / i band
    extra = pd.DataFrame({"objectId": ["ZTFsingle", "ZTFnone", "ZTFnone"], "mjd": [59000.0, 59000.0, 59001.0],
                          "band": ["g", "i", "r"], "mag": [18.0, 18.0, np.nan], "magerr": [0.1, 0.1, np.nan]})
    return pd.concat([table, extra]).sample(frac=1.0, random_state=0).reset_index(drop=True)


@pytest.fixture(scope="module")
def young_subset(bts_subset):
    """The same objects cut to their first 20 days: alerts young enough to pass the age cut."""
    start = bts_subset.groupby("objectId")["mjd"].transform("min")
    return bts_subset[bts_subset["mjd"] <= start + 20].reset_index(drop=True)


def test_one_row_per_object_with_contract_classes(young_subset):
    model = load_model(ModelRef.resolve())
    out = classify_lightcurves(young_subset)
    names = list(model.class_names)
    assert out.columns.tolist() == ["objectId", "n_detections", *names, "class", "t2_status"]
    assert out["objectId"].tolist() == sorted(young_subset["objectId"].astype(str).unique())
    rejected = out.set_index("objectId").loc[["ZTFsingle", "ZTFnone"]]
    assert (rejected[names] == -1).all().all() and (rejected["class"] == "").all()
    assert (rejected["t2_status"] == "too_few_detections").all()
    ok = out[out["class"] != ""]
    assert len(ok) > 0.8 * len(out) and (ok["t2_status"] == "ok").all()
    np.testing.assert_allclose(ok[names].sum(axis=1), 1.0, atol=1e-3)
    assert ok["class"].isin(names).all()  # the network's class-balanced decision (checked per object below)


def test_full_light_curves_are_old_alerts(bts_subset):
    """A whole BTS curve is classified as the alert at its last point: too old when it spans over 90 days."""
    out = classify_lightcurves(bts_subset).set_index("objectId")
    detected = bts_subset[bts_subset["mag"].notna() & bts_subset["band"].isin(["g", "r"])]
    span = detected.groupby("objectId")["mjd"].agg(lambda m: m.max() - m.min())
    last_row = bts_subset.groupby("objectId")["mjd"].max()
    old = span[(span > 90) & (last_row.loc[span.index] == detected.groupby("objectId")["mjd"].max())].index
    assert len(old) > 20 and (out.loc[old, "t2_status"] == "too_old").all()


def test_same_as_build_sequences_per_object(young_subset):
    """The vectorised grouping gives what one build_sequences call per object gives: the contract's calibration of
    the network output as probabilities, the argmax of the output itself as class."""
    model = load_model(ModelRef.resolve())
    out = classify_lightcurves(young_subset).set_index("objectId")
    for object_id in out.index[out["class"] != ""][::15]:
        obj = young_subset[young_subset["objectId"] == object_id]
        jd = obj["mjd"].to_numpy() + MJD_TO_JD
        seq = build_sequences([jd], [np.where(obj["band"] == "g", 1, 2)], [obj["mag"].to_numpy()],
                              jd_now=[jd.max()], jdstarthist=[jd.min()], ndethist=[obj["mag"].notna().sum()])
        output = model.predict(seq.values)
        served = calibrated_probabilities(output, now_features(seq.values), model.contract.get("calibration"))
        np.testing.assert_allclose(out.loc[object_id, list(model.class_names)].to_numpy(np.float32), served[0], atol=1e-6)
        assert out.loc[object_id, "class"] == model.class_names[output[0].argmax()]  # the raw output's argmax
        assert out.loc[object_id, "n_detections"] == seq.n_detections[0]


def test_stream_and_classify_agree_on_real_alerts(spark, sample_night, shared_data):
    """The same light curves, built from real alerts, through the Spark UDF and through fink-t2 classify."""
    from fink_t2.alerts.binaryfile import load_alerts

    paths = [sample_night, str(shared_data / "ztf_alerts" / "multi_alert_avro_2019")]
    for path in paths:
        df = load_alerts(spark, path).withColumn("_t2", t2_result_udf()(*T2_COLUMNS))
        streamed = df.select("candid", "_t2.*").toPandas().set_index("candid")
        alerts = pd.concat([t.to_pandas() for t in iter_alert_tables(path)], ignore_index=True)
        rows = []
        for a in alerts.itertuples():
            for jd, fid, mag, sign in zip(a.cjd, a.cfid, a.cmagpsf, a.cisdiffpos):
                rows.append({"objectId": str(a.candid), "mjd": jd - MJD_TO_JD, "fid": fid, "mag": mag,
                             "isdiffpos": sign, "jdstarthist": a.jdstarthist, "ndethist": a.ndethist,
                             "roid": a.roid, "cdsxmatch": a.cdsxmatch})
        table = pd.DataFrame(rows)
        out = classify_lightcurves(table).set_index("objectId")
        out.index = out.index.astype(np.int64)
        out = out.loc[streamed.index]
        assert (out["t2_status"] == streamed["t2_status"]).all()
        ok = streamed["t2_status"] == "ok"
        for candid in streamed.index[ok]:
            expected = streamed.loc[candid, "t2"]
            got = out.loc[candid, list(expected)]
            np.testing.assert_allclose(got.to_numpy(np.float32), np.array(list(expected.values()), np.float32),
                                       atol=1e-5)
        assert (out.loc[~ok, list(streamed.iloc[0]["t2"])] == -1).all().all()


def test_cli_csv_gz_and_parquet(bts_subset, tmp_path, capsys):
    csv_path, parquet_path = tmp_path / "lc.csv.gz", tmp_path / "lc.parquet"
    bts_subset.to_csv(csv_path, index=False)
    bts_subset.to_parquet(parquet_path, index=False)
    assert main(["classify", str(csv_path), "--output", str(tmp_path / "a.csv")]) == 0
    assert main(["classify", str(parquet_path), "--output", str(tmp_path / "b.csv")]) == 0
    a, b = pd.read_csv(tmp_path / "a.csv", keep_default_na=False), pd.read_csv(tmp_path / "b.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == bts_subset["objectId"].nunique() and (a["t2_status"] != "ok").sum() == (a["class"] == "").sum()
    assert main(["classify", str(tmp_path / "missing.csv"), "--output", str(tmp_path / "c.csv")]) == 2
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"objectId": ["a"], "mjd": [1.0]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="needs columns"):
        read_lightcurves(bad)
    assert main(["classify", str(bad), "--output", str(tmp_path / "c.csv")]) == 2
