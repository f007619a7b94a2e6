"""t2 beside real Fink science modules (fink-science from PyPI) in one DataFrame, on real alerts.

SuperNNova (torch, supernnova >= 3.0.51 under pandas 2, installed --no-deps) runs in CI's Fink-stack venv
(constraints/fink-production.txt, $FINK_T2_STACK=fink-production), where its absence is a failure.
"""

import importlib.util
import os

import numpy as np
import pyarrow.parquet as pq
import pytest

from fink_t2.alerts.binaryfile import load_alerts
from fink_t2.fink_modules import FINK_MODULES, add_fink_modules
from fink_t2.stream.replay import with_t2

BESIDE = ["nalerthist", "roid"]


@pytest.fixture(scope="module")
def together(spark, sample_night):
    df = add_fink_modules(with_t2(load_alerts(spark, sample_night)), BESIDE)
    return df.select("candid", "t2", "t2_status", *[FINK_MODULES[n].output for n in BESIDE]).toPandas()


def test_modules_beside_t2_reproduce_finks_own_values(together, sample_night):
    stored = pq.read_table(sample_night, columns=["candid", "nalerthist", "roid"]).to_pandas()
    merged = together.merge(stored, on="candid", suffixes=("", "_fink"))
    assert len(merged) == 124
    assert (merged.nalerthist == merged.nalerthist_fink).all()
    assert (merged.roid_fink == merged.roid).all()


def test_t2_is_the_same_with_or_without_other_modules(together, spark, sample_night):
    alone = with_t2(load_alerts(spark, sample_night)).select("candid", "t2", "t2_status").toPandas()
    merged = together.merge(alone, on="candid", suffixes=("", "_alone"))
    assert len(merged) == 124
    assert (merged.t2_status == merged.t2_status_alone).all()
    assert all(a == b for a, b in zip(merged.t2, merged.t2_alone))


def test_modules_are_the_same_with_or_without_t2(together, spark, sample_night):
    alone = add_fink_modules(load_alerts(spark, sample_night), BESIDE).select("candid", "nalerthist", "roid_fink")
    merged = together.merge(alone.toPandas(), on="candid", suffixes=("", "_alone"))
    assert (merged.nalerthist == merged.nalerthist_alone).all() and (merged.roid_fink == merged.roid_fink_alone).all()


def test_unknown_module_is_a_clear_error(spark, sample_night):
    with pytest.raises(ValueError, match="unknown Fink module"):
        add_fink_modules(load_alerts(spark, sample_night), ["not_a_module"])


@pytest.fixture(scope="module")
def with_snn(spark, sample_night):
    if importlib.util.find_spec("supernnova") is None and os.environ.get("FINK_T2_STACK") != "fink-production":
        pytest.skip("SuperNNova is not installed (CI installs it in the Fink-stack venv)")
    df = add_fink_modules(with_t2(load_alerts(spark, sample_night)), ["snn_snia_vs_nonia"])
    columns = ["candid", "cjd", "cmagpsf", "roid", "cdsxmatch", "candidate.jdstarthist", "t2", "t2_status",
               "snn_snia_vs_nonia"]
    return df.select(*columns).toPandas()


@pytest.mark.slow
def test_supernnova_beside_t2_applies_its_own_cuts(with_snn, spark, sample_night):
    from fink_science.ztf.snn.processor import apply_selection_cuts_ztf

    passed = apply_selection_cuts_ztf(with_snn.cmagpsf, with_snn.cdsxmatch, with_snn.cjd, with_snn.jdstarthist,
                                      with_snn.roid).to_numpy(bool)
    score = with_snn.snn_snia_vs_nonia.to_numpy(float)
    assert len(score) == 124 and 0 < passed.sum() < 124
    assert (score[~passed] == 0).all()  # SuperNNova's value for an alert its cuts reject
    assert np.isfinite(score[passed]).all() and ((score[passed] > 0) & (score[passed] < 1)).all()
    alone = with_t2(load_alerts(spark, sample_night)).select("candid", "t2", "t2_status").toPandas()
    merged = with_snn.merge(alone, on="candid", suffixes=("", "_alone"))
    assert (merged.t2_status == merged.t2_status_alone).all() and all(a == b for a, b in zip(merged.t2, merged.t2_alone))
