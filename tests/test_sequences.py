"""The one preprocessing, on real alerts: time order, band order, upper limits, missing bands."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fink_t2.alerts import iter_alert_tables
from fink_t2.sequences import GRID_STEP_DAYS, SEQUENCE_LENGTH, build_sequences, flatten_ragged


@pytest.fixture(scope="module")
def alerts(sample_night) -> pd.DataFrame:
    return pd.concat([t.to_pandas() for t in iter_alert_tables(sample_night)], ignore_index=True)


def _build(df):
    return build_sequences(df.cjd, df.cfid, df.cmagpsf)


def test_shape_and_range_on_real_alerts(alerts):
    seq = _build(alerts)
    assert seq.values.shape == (len(alerts), SEQUENCE_LENGTH, 2)
    assert np.isfinite(seq.values).all()
    assert seq.values.min() >= 0 and seq.values.max() <= 1.0 + 1e-6
    has_points = seq.n_detections > 0
    np.testing.assert_allclose(seq.values[has_points].max(axis=(1, 2)), 1.0, rtol=1e-6)
    assert not seq.mask[~has_points].any()


def test_counts_only_gr_detections_so_upper_limits_are_ignored(alerts):
    seq = _build(alerts)
    expected = [
        int(np.sum(np.isfinite(np.asarray(m, float)) & np.isin(f, (1, 2)))) for m, f in zip(alerts.cmagpsf, alerts.cfid)
    ]
    assert seq.n_detections.tolist() == expected
    assert any(np.isnan(np.asarray(m, float)).any() for m in alerts.cmagpsf), "sample must hold upper limits"


def test_input_order_does_not_matter(alerts):
    rng = np.random.default_rng(1)
    perms = [rng.permutation(len(a)) for a in alerts.cjd]
    shuffled = {c: [np.asarray(a)[p] for a, p in zip(alerts[c], perms)] for c in ("cjd", "cfid", "cmagpsf")}
    np.testing.assert_array_equal(_build(alerts).values, build_sequences(**dict(zip(("jd", "fid", "magpsf"), shuffled.values()))).values)


def test_time_runs_forward_from_first_detection(alerts):
    seq = _build(alerts)
    for i, (jd, fid, mag) in enumerate(zip(alerts.cjd, alerts.cfid, alerts.cmagpsf)):
        det = np.isfinite(np.asarray(mag, float)) & np.isin(fid, (1, 2))
        if det.sum() < 2:
            continue
        jd_det, fid_det = np.asarray(jd)[det], np.asarray(fid)[det]
        first, last = np.argmin(jd_det), np.argmax(jd_det)
        assert seq.mask[i, 0, fid_det[first] - 1], "first detection sits at node 0"
        last_node = int(np.rint((jd_det[last] - jd_det[first]) / GRID_STEP_DAYS))
        assert seq.mask[i, last_node, fid_det[last] - 1]
        assert not seq.mask[i, last_node + 1 :].any(), "nothing after the latest detection"


def test_band_channels_are_fixed_g_then_r(alerts):
    seq = _build(alerts)
    swapped = [np.where(np.asarray(f) == 1, 2, np.where(np.asarray(f) == 2, 1, f)) for f in alerts.cfid]
    swapped_seq = build_sequences(alerts.cjd, swapped, alerts.cmagpsf)
    np.testing.assert_array_equal(seq.values, swapped_seq.values[:, :, ::-1])
    r_first = build_sequences([np.array([1.0, 2.0])], [np.array([2, 1])], [np.array([18.0, 19.0])])
    assert r_first.mask[0, 0].tolist() == [False, True] and r_first.mask[0, 1].tolist() == [True, False]
    r_only = build_sequences([np.array([1.0, 3.0])], [np.array([2, 2])], [np.array([18.0, 19.0])])
    assert not r_only.mask[0, :, 0].any() and r_only.mask[0, :3, 1].all()


def test_i_band_and_absurd_magnitudes_are_dropped():
    seq = build_sequences([np.array([1.0, 2.0, 3.0, 4.0])], [np.array([3, 1, 1, 2])], [np.array([18.0, 99.0, 18.0, -1.0])])
    assert seq.n_detections.tolist() == [1]
    assert seq.mask[0, :, 1].sum() == 0 and seq.mask[0, 0, 0]


def test_empty_and_null_histories():
    seq = build_sequences([np.array([]), None], [np.array([]), None], [np.array([]), None])
    assert seq.values.shape == (2, SEQUENCE_LENGTH, 2) and not seq.values.any()
    assert seq.n_detections.tolist() == [0, 0]


def test_mismatched_lengths_are_a_clear_error():
    with pytest.raises(ValueError, match="same length"):
        build_sequences([np.array([1.0, 2.0])], [np.array([1])], [np.array([18.0, 18.0])])


def test_points_beyond_the_window_are_dropped():
    jd = np.array([0.0, 50.0, 150.0])
    seq = build_sequences([jd], [np.array([1, 1, 1])], [np.array([19.0, 18.0, 17.0])])
    assert seq.n_detections.tolist() == [2]


light_curve = st.lists(
    st.tuples(
        st.one_of(st.floats(2458000, 2458300), st.just(float("nan"))),
        st.sampled_from([1, 2, 3]),
        st.one_of(st.none(), st.floats(-50, 60), st.sampled_from([float("nan"), float("inf")])),
    ),
    max_size=40,
)


@settings(max_examples=200, deadline=None)
@given(st.lists(light_curve, min_size=1, max_size=8))
def test_any_ragged_batch_gives_finite_bounded_values(batch):
    jd = [np.array([p[0] for p in lc]) for lc in batch]
    fid = [np.array([p[1] for p in lc]) for lc in batch]
    mag = [np.array([np.nan if p[2] is None else p[2] for p in lc]) for lc in batch]
    seq = build_sequences(jd, fid, mag)
    assert seq.values.shape == (len(batch), SEQUENCE_LENGTH, 2)
    assert np.isfinite(seq.values).all() and seq.values.min() >= 0 and seq.values.max() <= 1 + 1e-6
    assert (seq.values[~seq.mask] == 0).all()
    flat, offsets = flatten_ragged(jd)
    assert offsets[-1] == len(flat)
