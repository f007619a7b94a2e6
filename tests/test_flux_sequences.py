"""Bands as data: the contract's input spec, flux sequences in any band set, the PLAsTiCC loader."""

import numpy as np
import pytest

from fink_t2.core.contract import (
    ModelContractError,
    attach_contract,
    check_contract,
    input_spec,
    make_contract,
    read_contract,
    strip_contract,
)
from fink_t2.core.flux_sequences import build_flux_sequences
from fink_t2.core.spec import SequenceSpec
from fink_t2.model.plasticc import FLUXCAL_TO_NJY, full_curve_inputs, load_plasticc
from fink_t2.paths import DEFAULT_MODEL_PATH

LSST = SequenceSpec()


@pytest.fixture(scope="module")
def plasticc(shared_data):
    lc, objects = load_plasticc(shared_data)
    few = objects.groupby("label").head(2).sort_values("object_id").reset_index(drop=True)
    return lc[lc["object_id"].isin(few["object_id"])].reset_index(drop=True), few


def test_shipped_ztf_contract_is_read_as_gr_ujy():
    spec = input_spec(read_contract(DEFAULT_MODEL_PATH))
    assert spec["bands"] == ("g", "r") and spec["flux_unit"] == "uJy" and spec["zero_point"] == 23.9


def test_a_flux_contract_round_trips_and_refuses_inconsistency(tmp_path):
    contract = make_contract(["a", "b"], spec=LSST, calibration=None)
    check_contract(contract)
    assert input_spec(contract) == LSST and contract["flux_unit"] == "nJy" and contract["bands"] == list("ugrizy")
    path = tmp_path / "m.tflite"
    path.write_bytes(attach_contract(strip_contract(DEFAULT_MODEL_PATH), contract))
    assert read_contract(path)["window_days"] == 365.0
    for change in ({"channels": contract["channels"][::-1]}, {"preprocessing_version": "x"}, {"bands": ["u"]},
                   {"representation": "gp"}):
        with pytest.raises(ModelContractError):
            check_contract({**contract, **change})


def test_band_order_is_the_specs_not_the_rows(plasticc):
    lc, objects = plasticc
    x, y = full_curve_inputs(lc, objects, LSST)
    shuffled = lc.sample(frac=1.0, random_state=1).sort_values("object_id", kind="stable")
    x2, _ = full_curve_inputs(shuffled, objects, LSST)
    assert x.shape == (len(objects), LSST.sequence_length, len(LSST.channels)) and np.isfinite(x).all()
    np.testing.assert_allclose(x, x2, atol=1e-6)
    assert y.tolist() == objects["y"].tolist()


def test_one_object_by_hand(plasticc):
    """Window, forced photometry (measured, not detected), nJy and the peak scale, checked point by point."""
    lc, objects = plasticc
    obj = lc[lc["object_id"] == objects["object_id"].iloc[0]]
    now = obj["mjd"].iloc[len(obj) // 2]
    seq = build_flux_sequences(LSST, [obj["mjd"]], [obj["band"]], [obj["flux"]], [obj["detected"]], t_now=[now])
    inside = obj[(obj["mjd"] <= now) & (obj["mjd"] >= now - LSST.window_days)]
    nb = len(LSST.bands)
    v = seq.values[0]
    assert seq.n_detections[0] == inside["detected"].sum()
    for b in range(nb):
        nights = np.unique(np.floor(inside.loc[inside["band"] == b, "mjd"]))
        assert v[:, nb + b].sum() == min(len(nights), LSST.sequence_length)
    peak = inside.loc[inside["detected"], "flux"].abs().max()
    assert v[:, :nb].max() <= 1.0 + 1e-6
    assert v[0, 3 * nb + 3] == pytest.approx(np.log10(peak / 1000.0) - 1.5, abs=1e-5)


def test_fluxcal_to_njy_and_the_data_dir_variable(shared_data, tmp_path, monkeypatch):
    assert 27.5 - 2.5 * np.log10(1.0) == pytest.approx(31.4 - 2.5 * np.log10(FLUXCAL_TO_NJY))
    monkeypatch.setenv("FINK_T2_DATA", str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        load_plasticc()


def test_bad_input_is_a_clear_error():
    with pytest.raises(ValueError, match="same length"):
        build_flux_sequences(LSST, [[1.0, 2.0]], [["g"]], [[1.0, 2.0]])
    with pytest.raises(ValueError, match="photoz"):
        build_flux_sequences(SequenceSpec(extra_channels=("photoz",)), [[1.0]], [["g"]], [[1.0]])
    seq = build_flux_sequences(LSST, [[1.0, np.nan], []], [["q", "g"], []], [[1.0, 2.0], []])
    assert np.isfinite(seq.values).all() and not seq.values[..., :18].any() and seq.n_detections.tolist() == [0, 0]
