"""fink-t2 classify: light-curve tables (real ZTF BTS curves) → one row of probabilities per object."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fink_t2.classify import MJD_TO_JD, classify_lightcurves, read_lightcurves
from fink_t2.cli import main
from fink_t2.inference import load_model
from fink_t2.samples import SHARED_DATA
from fink_t2.sequences import build_sequences

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


def test_one_row_per_object_with_contract_classes(bts_subset):
    model = load_model()
    out = classify_lightcurves(bts_subset)
    names = list(model.class_names)
    assert out.columns.tolist() == ["objectId", "n_detections", *names, "class"]
    assert out["objectId"].tolist() == sorted(bts_subset["objectId"].astype(str).unique())
    rejected = out.set_index("objectId").loc[["ZTFsingle", "ZTFnone"]]
    assert (rejected[names] == -1).all().all() and (rejected["class"] == "").all()
    ok = out[out["class"] != ""]
    assert len(ok) == len(out) - 2
    np.testing.assert_allclose(ok[names].sum(axis=1), 1.0, atol=1e-3)
    assert (ok["class"] == np.asarray(names)[ok[names].to_numpy().argmax(axis=1)]).all()


def test_same_as_build_sequences_per_object(bts_subset):
    """The vectorised grouping gives what one build_sequences call per object gives."""
    model = load_model()
    out = classify_lightcurves(bts_subset).set_index("objectId")
    for object_id in out.index[out["class"] != ""][::15]:
        obj = bts_subset[bts_subset["objectId"] == object_id]
        seq = build_sequences([obj["mjd"].to_numpy() + MJD_TO_JD], [np.where(obj["band"] == "g", 1, 2)],
                              [obj["mag"].to_numpy()])
        np.testing.assert_allclose(out.loc[object_id, list(model.class_names)].to_numpy(np.float32),
                                   model.predict(seq.values)[0], atol=1e-6)
        assert out.loc[object_id, "n_detections"] == seq.n_detections[0]


def test_cli_csv_gz_and_parquet(bts_subset, tmp_path, capsys):
    csv_path, parquet_path = tmp_path / "lc.csv.gz", tmp_path / "lc.parquet"
    bts_subset.to_csv(csv_path, index=False)
    bts_subset.to_parquet(parquet_path, index=False)
    assert main(["classify", str(csv_path), "--output", str(tmp_path / "a.csv")]) == 0
    assert main(["classify", str(parquet_path), "--output", str(tmp_path / "b.csv")]) == 0
    a, b = pd.read_csv(tmp_path / "a.csv", keep_default_na=False), pd.read_csv(tmp_path / "b.csv", keep_default_na=False)
    pd.testing.assert_frame_equal(a, b)
    assert len(a) == bts_subset["objectId"].nunique() and (a["class"] == "").sum() == 2
    assert main(["classify", str(tmp_path / "missing.csv"), "--output", str(tmp_path / "c.csv")]) == 2
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"objectId": ["a"], "mjd": [1.0]}).to_csv(bad, index=False)
    with pytest.raises(ValueError, match="needs columns"):
        read_lightcurves(bad)
    assert main(["classify", str(bad), "--output", str(tmp_path / "c.csv")]) == 2
