"""The one preprocessing, on real alerts: window, time order, band order, signs, header channels."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fink_t2.alerts import iter_alert_tables
from fink_t2.core.sequences import CHANNELS, SEQUENCE_LENGTH, WINDOW_DAYS, build_sequences, flatten_ragged

G, R, OBS_G, OBS_R, AGE, NDET, PEAK = range(len(CHANNELS))


@pytest.fixture(scope="module")
def alerts(sample_night) -> pd.DataFrame:
    return pd.concat([t.to_pandas() for t in iter_alert_tables(sample_night)], ignore_index=True)


@pytest.fixture(scope="module")
def container_alerts(shared_data) -> pd.DataFrame:
    """Real alerts of 2019 whose histories hold negative-difference detections (isdiffpos 'f')."""
    folder = shared_data / "ztf_alerts" / "multi_alert_avro_2019"
    return pd.concat([t.to_pandas() for t in iter_alert_tables(folder)], ignore_index=True)


def _build(df, **header):
    now = df.cjd.map(lambda a: a[-1]).to_numpy()
    return build_sequences(df.cjd, df.cfid, df.cmagpsf, df.cisdiffpos, now, df.jdstarthist, df.ndethist, **header)


def _rows_picked(df, picks):
    """``df`` with each alert's history arrays reduced to ``picks[i]`` (indices or a mask), as plain arrays."""
    cut = df.assign(**{c: [np.asarray(a, dtype=object)[k] for a, k in zip(df[c], picks)]
                       for c in ("cjd", "cfid", "cmagpsf", "cisdiffpos")})
    return cut.assign(cjd=[a.astype(float) for a in cut.cjd], cfid=[a.astype(float) for a in cut.cfid],
                      cmagpsf=[np.array([np.nan if m is None else m for m in a], float) for a in cut.cmagpsf])


def _build_now(df, now):
    """build_sequences of ``df`` at the epochs ``now`` (its history may be reordered or cut)."""
    return build_sequences(df.cjd, df.cfid, df.cmagpsf, df.cisdiffpos, now, df.jdstarthist, df.ndethist)


def _positive_detections(df):
    """Per alert: (jd, fid) of its positive g/r detections inside the window, computed point by point."""
    out = []
    for jd, fid, mag, sign in zip(df.cjd, df.cfid, df.cmagpsf, df.cisdiffpos):
        jd, fid = np.asarray(jd, float), np.asarray(fid)
        mag = np.array([np.nan if m is None else m for m in mag], float)
        keep = np.isfinite(mag) & np.isin(fid, (1, 2)) & np.array([s not in ("f", "0") for s in sign])
        keep &= jd >= jd[-1] - WINDOW_DAYS - 0.5
        out.append((jd[keep], fid[keep]))
    return out


def test_shape_and_range_on_real_alerts(alerts):
    seq = _build(alerts)
    assert seq.values.shape == (len(alerts), SEQUENCE_LENGTH, len(CHANNELS))
    assert np.isfinite(seq.values).all()
    flux = seq.values[..., [G, R]]
    assert flux.min() >= 0 and flux.max() <= 1.0 + 1e-6
    has_points = seq.n_detections > 0
    assert has_points.sum() > 50  # the others are negative differences (variable stars) or limits only
    np.testing.assert_allclose(flux[has_points].max(axis=(1, 2)), 1.0, rtol=1e-6)
    assert set(np.unique(seq.values[..., [OBS_G, OBS_R]])) <= {0.0, 1.0}
    assert (seq.values[..., NDET] == seq.values[:, :1, NDET]).all(), "header channels are the same at every node"


def test_counts_only_positive_gr_detections_in_the_window(alerts, container_alerts):
    for df in (alerts, container_alerts):
        seq = _build(df)
        expected = _positive_detections(df)
        assert seq.n_detections.tolist() == [len(jd) for jd, _ in expected]
        assert seq.n_epochs.tolist() == [len(np.unique(jd)) for jd, _ in expected]
    assert any(np.isnan(np.asarray(m, float)).any() for m in alerts.cmagpsf), "sample must hold upper limits"


def test_negative_differences_are_dropped_on_real_alerts(container_alerts):
    signs = [np.asarray(s, dtype=object) for s in container_alerts.cisdiffpos]
    has_negative = np.array([(s == "f").any() for s in signs])
    assert has_negative.sum() >= 3, "these real alerts carry negative-difference detections"
    seq = _build(container_alerts)
    assert (seq.n_negative[has_negative] > 0).any() and (seq.n_negative[~has_negative] == 0).all()
    # the same alerts with every negative point removed by hand give exactly the same tensor
    now = container_alerts.cjd.map(lambda a: a[-1]).to_numpy()
    by_hand = _build_now(_rows_picked(container_alerts, [s != "f" for s in signs]), now)
    np.testing.assert_array_equal(seq.values, by_hand.values)


def test_input_order_does_not_matter(alerts):
    rng = np.random.default_rng(1)
    perms = [rng.permutation(len(a)) for a in alerts.cjd]
    again = _build_now(_rows_picked(alerts, perms), alerts.cjd.map(lambda a: a[-1]).to_numpy())
    np.testing.assert_array_equal(_build(alerts).values, again.values)


def test_time_runs_forward_and_the_alert_epoch_is_the_last_node(alerts):
    seq = _build(alerts)
    for i, (jd, fid) in enumerate(_positive_detections(alerts)):
        if len(jd) == 0:
            continue
        now = alerts.cjd[i][-1]
        nodes = np.rint((jd - (now - WINDOW_DAYS))).astype(int)
        for node, f in zip(nodes, fid):
            assert seq.values[i, node, OBS_G + f - 1] == 1.0
        observed = seq.values[i, :, [OBS_G, OBS_R]].any(axis=0)
        assert not observed[: nodes.min()].any() and not observed[nodes.max() + 1 :].any()
        if jd.max() == now:
            assert observed[-1], "a positive current detection sits at the last node"


def test_band_channels_are_fixed_g_then_r(alerts):
    seq = _build(alerts)
    swapped = [np.where(np.asarray(f) == 1, 2, np.where(np.asarray(f) == 2, 1, f)) for f in alerts.cfid]
    swapped_seq = _build(alerts.assign(cfid=swapped))
    np.testing.assert_array_equal(seq.values[..., [G, R, OBS_G, OBS_R]], swapped_seq.values[..., [R, G, OBS_R, OBS_G]])
    r_first = build_sequences([np.array([1.0, 2.0])], [np.array([2, 1])], [np.array([18.0, 19.0])])
    assert r_first.values[0, -2, OBS_R] == 1 and r_first.values[0, -1, OBS_G] == 1 and r_first.values[0, -2, OBS_G] == 0


def test_header_channels_age_ndethist_and_brightness():
    jd = [np.array([100.0, 110.0]), np.array([100.0, 110.0])]
    seq = build_sequences(jd, [np.array([1, 1])] * 2, [np.array([19.0, 18.0]), np.array([21.0, 20.0])],
                          jd_now=[110.0, 110.0], jdstarthist=[40.0, np.nan], ndethist=[99, np.nan])
    assert seq.age_days.tolist() == [70.0, 10.0]  # unknown start: the first detection seen
    np.testing.assert_allclose(seq.values[:, -1, AGE], [70 / 30, 10 / 30], rtol=1e-6)
    np.testing.assert_allclose(seq.values[1, -11, AGE], 0.0, atol=1e-6)  # first detection: age 0 at its node
    np.testing.assert_allclose(seq.values[:, 0, NDET], [1.0, np.log10(3) / 2], rtol=1e-6)  # 2 detections seen
    # brightness: log10(peak µJy) - 1.5, 18 mag vs 20 mag differ by 0.8
    np.testing.assert_allclose(seq.values[0, 0, PEAK] - seq.values[1, 0, PEAK], 0.8, rtol=1e-5)
    np.testing.assert_array_equal(seq.values[0, :, [G, R]], seq.values[1, :, [G, R]])  # shapes are the same


def test_only_the_last_30_days_are_seen():
    jd = np.array([0.0, 20.0, 45.0, 50.0])
    seq = build_sequences([jd], [np.array([1, 1, 2, 2])], [np.array([19.0, 18.0, 17.0, 17.5])])
    assert seq.n_detections.tolist() == [3] and seq.values[0, :, OBS_G].sum() == 1
    later = build_sequences([jd], [np.array([1, 1, 2, 2])], [np.array([19.0, 18.0, 17.0, 17.5])], jd_now=[200.0])
    assert later.n_detections.tolist() == [0] and not later.values[0, :, :4].any()


def test_i_band_absurd_magnitudes_and_future_points_are_dropped():
    seq = build_sequences([np.array([1.0, 2.0, 3.0, 4.0, 9.0])], [np.array([3, 1, 1, 2, 1])],
                          [np.array([18.0, 99.0, 18.0, -1.0, 18.0])], jd_now=[5.0])
    assert seq.n_detections.tolist() == [1]
    assert seq.values[0, :, OBS_R].sum() == 0 and seq.values[0, -3, OBS_G] == 1


def test_empty_and_null_histories():
    seq = build_sequences([np.array([]), None], [np.array([]), None], [np.array([]), None])
    assert seq.values.shape == (2, SEQUENCE_LENGTH, len(CHANNELS)) and not seq.values[..., :4].any()
    assert seq.n_detections.tolist() == [0, 0] and np.isfinite(seq.values).all()


def test_mismatched_lengths_are_a_clear_error():
    with pytest.raises(ValueError, match="same length"):
        build_sequences([np.array([1.0, 2.0])], [np.array([1])], [np.array([18.0, 18.0])])
    with pytest.raises(ValueError, match="same length"):
        build_sequences([np.array([1.0, 2.0])], [np.array([1, 1])], [np.array([18.0, 18.0])], [np.array(["t"])])
    with pytest.raises(ValueError, match="jd_now"):
        build_sequences([np.array([1.0])], [np.array([1])], [np.array([18.0])], jd_now=[1.0, 2.0])


light_curve = st.lists(
    st.tuples(
        st.one_of(st.floats(2458000, 2458300), st.just(float("nan"))),
        st.sampled_from([1, 2, 3]),
        st.one_of(st.none(), st.floats(-50, 60), st.sampled_from([float("nan"), float("inf")])),
        st.sampled_from(["t", "f", "1", "0", None]),
    ),
    max_size=40,
)
header = st.one_of(st.floats(2457000, 2458400), st.sampled_from([float("nan"), float("inf"), -1e300]))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(light_curve, header, header, st.one_of(st.floats(-5, 1e6), st.just(float("nan")))),
                min_size=1, max_size=8))
def test_any_ragged_batch_gives_finite_bounded_values(batch):
    jd = [np.array([p[0] for p in lc]) for lc, *_ in batch]
    fid = [np.array([p[1] for p in lc]) for lc, *_ in batch]
    mag = [np.array([np.nan if p[2] is None else p[2] for p in lc]) for lc, *_ in batch]
    sign = [np.array([p[3] for p in lc], dtype=object) for lc, *_ in batch]
    now, start, ndet = ([row[k] for row in batch] for k in (1, 2, 3))
    seq = build_sequences(jd, fid, mag, sign, now, start, ndet)
    assert seq.values.shape == (len(batch), SEQUENCE_LENGTH, len(CHANNELS))
    assert np.isfinite(seq.values).all()
    assert seq.values[..., :2].min() >= 0 and seq.values[..., :2].max() <= 1 + 1e-6
    unseen_band = seq.values[..., [OBS_G, OBS_R]].sum(axis=1) == 0  # (n, 2)
    assert not seq.values[..., [G, R]].transpose(0, 2, 1)[unseen_band].any(), "no flux in a band never observed"
    flat, offsets = flatten_ragged(jd)
    assert offsets[-1] == len(flat)
