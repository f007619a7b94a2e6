"""Tests of the t2 training code (needs the ``train`` extra and the shared data sets)."""

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import tf_keras  # noqa: F401  (train extra: a missing install must fail, not skip)

from fink_t2.contract import read_contract  # noqa: E402
from fink_t2.model.architecture import build_model, keras  # noqa: E402
from fink_t2.model.datasets import (CLASS_NAMES, load_bts, load_snpcc, make_examples,  # noqa: E402
                                    split_objects, type_to_class)
from fink_t2.model.train import predict_tflite, train_and_export  # noqa: E402
from fink_t2.sequences import build_sequences  # noqa: E402

DATA_DIR = Path(os.environ.get("FINK_T2_DATA", Path(__file__).parents[1] / "../shared/data"))
assert (DATA_DIR / "ztf_bts").is_dir(), f"no BTS data in {DATA_DIR}: set FINK_T2_DATA"  # fail, never skip


@pytest.fixture(scope="module")
def bts():
    return load_bts(DATA_DIR)


def test_architecture_size_and_softmax():
    model = build_model(len(CLASS_NAMES))
    assert 10_000 < model.count_params() < 20_000
    x = np.random.default_rng(0).random((3, 100, 2)).astype(np.float32)
    proba = model.predict(x, verbose=0)
    assert proba.shape == (3, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    clone = keras.models.model_from_json(model.to_json())  # custom layer is serialisable
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(x, verbose=0), proba, rtol=1e-5)


def test_every_labelled_type_is_mapped():
    bts_types = pd.read_csv(DATA_DIR / "ztf_bts" / "labels.csv")["type"].unique()
    snpcc_types = pd.read_csv(DATA_DIR / "snpcc_des" / "labels.csv")["type"].unique()
    mapped = {t: type_to_class(t) for t in [*bts_types, *snpcc_types]}
    assert all(c in CLASS_NAMES for c in mapped.values()), mapped
    assert mapped["SN Ia-91T"] == "SN Ia" and mapped["SN IIb"] == "SN II" and mapped["SN Ic-BL"] == "SN Ibc"
    assert mapped["TDE"] == "Other" and mapped["IIP"] == "SN II" and mapped["Ibc"] == "SN Ibc"


def test_bts_table_and_split(bts):
    assert set(bts.columns) == {"object_id", "jd", "fid", "mag", "label", "source"}
    assert set(bts["fid"]) == {1, 2} and bts["jd"].min() > 2400000.5 and set(bts["source"]) == {"bts"}
    snpcc = load_snpcc(DATA_DIR, max_objects=30, seed=1)
    assert snpcc["object_id"].nunique() == 30 and set(snpcc["fid"]) <= {1, 2}
    assert snpcc.groupby("object_id")["label"].first().value_counts().tolist() == [10, 10, 10]
    objects = pd.concat([bts, snpcc]).groupby("object_id").agg(label=("label", "first"), source=("source", "first"))
    split = split_objects(objects.reset_index(), seed=3)
    assert split.index.is_unique and set(split) == {"train", "val", "test"}
    assert (objects.loc[split.index[split == "test"], "source"] == "bts").all()
    assert split.equals(split_objects(objects.reset_index(), seed=3))


def test_truncations_match_per_object_sequences(bts):
    table = bts[bts["object_id"].isin(bts["object_id"].unique()[:25])]
    ex = make_examples(table, max_truncations=5, seed=0)
    per_object = pd.Series(ex.object_id).value_counts()
    assert per_object.max() <= 5 and ex.full.sum() == len(per_object) and len(per_object) >= 20
    assert (ex.n_detections >= 2).all()
    labels = table.groupby("object_id")["label"].first()
    assert [CLASS_NAMES[i] for i in ex.label] == labels.loc[ex.object_id].tolist()
    for i in range(0, len(ex), 7):  # each example == build_sequences on the object cut by hand
        obj = table[table["object_id"] == ex.object_id[i]].sort_values("jd")
        if ex.full[i]:
            cut = obj
        else:
            cut = obj[obj["jd"] <= obj["jd"].iloc[ex.n_detections[i] - 1]]
        ref = build_sequences([cut["jd"].to_numpy()], [cut["fid"].to_numpy()], [cut["mag"].to_numpy()])
        np.testing.assert_array_equal(ex.values[i], ref.values[0])
        assert ref.n_detections[0] == ex.n_detections[i]


def test_tiny_train_and_export(tmp_path):
    metrics = train_and_export(DATA_DIR, tmp_path, epochs=1, seed=0, progress=False, max_objects=60,
                               snpcc_objects=60, max_truncations=3, float_dir=tmp_path / "float")
    path = tmp_path / "t2.tflite"
    for kept in ("t2_savedmodel", "t2.keras", "t2.h5", "float_model.json", "t2_metrics.json"):  # fink-t2 compress inputs
        assert (tmp_path / "float" / kept).exists(), kept
    contract = read_contract(path)
    assert contract["class_names"] == list(CLASS_NAMES) and contract["training"]["seed"] == 0
    proba = predict_tflite(path, np.random.default_rng(0).random((5, 100, 2)).astype(np.float32))
    assert proba.shape == (5, 4)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-4)
    assert (tmp_path / "t2_metrics.json").is_file()
    assert metrics["model_size"]["tflite_bytes"] == path.stat().st_size
    assert 0.0 <= metrics["test"]["full_curves"]["accuracy"] <= 1.0
