"""Redshift augmentation of BTS light curves (fink_t2.model.augment): physical, ZTF-like, no leakage."""

import os
from pathlib import Path

import numpy as np
import pytest

from fink_t2.model.augment import AUGMENTED_SOURCE, MIN_SNR, augment, dimming_redshift
from fink_t2.model.datasets import load_bts

DATA_DIR = Path(os.environ.get("FINK_T2_DATA", Path(__file__).parents[1] / "../shared/data"))


@pytest.fixture(scope="module")
def sample():
    bts = load_bts(DATA_DIR)
    ids = bts.groupby("object_id").size().loc[lambda n: n >= 20].index[:12]
    return bts[bts["object_id"].isin(ids)]


def test_dimming_redshift_follows_the_luminosity_distance():
    from astropy.cosmology import Planck18

    z_new = dimming_redshift(np.array([0.02, 0.08]), 1.0)
    ratio = Planck18.luminosity_distance(z_new).value / Planck18.luminosity_distance([0.02, 0.08]).value
    np.testing.assert_allclose(ratio, 10 ** 0.2, rtol=1e-3)
    assert (z_new > [0.02, 0.08]).all()


def test_augmented_curves_are_farther_fainter_and_from_their_own_object_only(sample):
    out = augment(sample, copies=2, seed=1, cache=None)
    assert list(out.columns) == list(sample.columns) and set(out["source"]) == {AUGMENTED_SOURCE}
    parents = out["object_id"].str.split("~").str[0]
    assert set(parents) <= set(sample["object_id"])  # only objects of the given table: no held-out object leaks
    assert out["object_id"].nunique() >= 12  # most of 2 x 12 copies keep >= 2 epochs
    for oid, g in out.groupby("object_id"):
        orig = sample[sample["object_id"] == oid.split("~")[0]]
        assert g["label"].iloc[0] == orig["label"].iloc[0]
        assert g["redshift"].iloc[0] >= orig["redshift"].iloc[0]
        assert g["jd"].min() >= orig["jd"].min() - 1e-6  # never seen before the real first detection
        stretch = (1 + g["redshift"].iloc[0]) / (1 + orig["redshift"].iloc[0])
        assert g["jd"].max() <= orig["jd"].min() + stretch * np.ptp(orig["jd"]) + 1e-6
        assert g["jd"].nunique() >= 2 and set(g["fid"]) <= {1, 2}
    assert (out["magerr"] <= 1.0857 / MIN_SNR * 1.5).all()  # detections only (S/N >= 5 before the noise draw)
    # farther means fainter: the brightest point of a copy is on average fainter than the real one's
    peak = out.groupby(out["object_id"].str.split("~").str[0])["mag"].min()
    assert (peak - sample.groupby("object_id")["mag"].min().loc[peak.index]).mean() > 0.2
    again = augment(sample, copies=2, seed=1, cache=None)
    assert again.equals(out)  # seeded


def test_balanced_augmentation_gives_rarer_classes_more_copies(sample):
    out = augment(sample, copies=1, seed=2, cache=None, max_copies=3)
    per_object = out.groupby(out["object_id"].str.split("~").str[0])["object_id"].nunique()
    labels = sample.groupby("object_id")["label"].first()
    largest = labels.value_counts().index[0]
    rare = [o for o in per_object.index if labels[o] != largest]
    assert rare and per_object[rare].max() > per_object[labels[per_object.index] == largest].max()
