"""fink-t2 classify with the Rubin model on a flux table: each object as the alert at its latest detection."""

import numpy as np
import pandas as pd
import pytest

from fink_t2.classify import classify_file
from fink_t2.core.spec import LSST_BANDS, spec_from_contract
from fink_t2.flux_table import classify_flux_table
from fink_t2.model.plasticc import load_plasticc
from fink_t2.model.plasticc_alerts import detection_table, view_inputs
from fink_t2.paths import MODEL_DIR
from fink_t2.runtime.inference import T2Model
from fink_t2.runtime.model_ref import ModelRef

MODEL = MODEL_DIR / "t2_lsst.tflite"


@pytest.fixture(scope="module")
def curves(shared_data):
    lc, objects = load_plasticc(shared_data)
    few = objects.groupby("label").head(1)["object_id"]
    return lc[lc["object_id"].isin(few)].reset_index(drop=True)


def _table(lc):
    return pd.DataFrame({"objectId": lc["object_id"], "mjd": lc["mjd"], "band": [LSST_BANDS[b] for b in lc["band"]],
                         "flux": lc["flux"], "flux_err": lc["flux_err"], "detected": lc["detected"].astype(int)})


def test_a_table_is_classified_as_the_stream_would_at_the_latest_detection(curves, tmp_path):
    path = tmp_path / "lc.parquet"
    _table(curves.sample(frac=1.0, random_state=0)).to_parquet(path)  # row order does not matter
    summary = classify_file(path, tmp_path / "out.csv", model_ref=ModelRef.resolve(MODEL))
    out = pd.read_csv(tmp_path / "out.csv")
    runner = T2Model(str(MODEL))
    assert summary["objects"] == summary["classified"] == curves["object_id"].nunique() == len(out)
    last = detection_table(curves)
    last = last[last["last"]]
    want = runner.predict(view_inputs(curves, last, spec_from_contract(runner.contract)))
    np.testing.assert_allclose(out[list(runner.class_names)].to_numpy(), want, atol=1e-5)
    np.testing.assert_allclose(out["mjd"], last["t_now"])


def test_without_detected_every_row_is_a_detection_and_bad_input_is_clear(curves, tmp_path):
    runner = T2Model(str(MODEL))
    table = _table(curves)
    plain = classify_flux_table(table.drop(columns="detected"), runner)
    assert (plain["n_detections"] > 0).all() and (plain["t2_status"] == "ok").all()
    none = classify_flux_table(table.assign(detected=0), runner)
    assert (none["t2_status"] == "no_detection").all() and (none[list(runner.class_names)] == -1).all().all()
    table.drop(columns="flux").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(ValueError, match="flux"):
        classify_file(tmp_path / "bad.csv", tmp_path / "o.csv", model_ref=ModelRef.resolve(MODEL))
