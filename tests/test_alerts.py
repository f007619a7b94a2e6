"""Tests of fink_t2.alerts on the real ZTF sample alerts of the shared data.

The data directory is ``$FINK_T2_DATA`` or ``<repo>/../shared/data``.
"""

from __future__ import annotations

import io
import os
import shutil
import tarfile
from pathlib import Path

import fastavro
import pyarrow as pa
import pytest
from alert_files import CONTAINER, DAMAGES, container_blocks, damage_block

from fink_t2.alerts import (
    ALERT_SCHEMA,
    CUTOUT_FIELDS,
    decode_avro_bytes,
    derive_roid,
    detect_format,
    iter_alert_tables,
    iter_alerts,
    read_avro,
    read_fink_parquet,
    read_tarball,
    records_to_table,
)
from fink_t2.alerts.table import HISTORY_FIELDS

DATA = Path(os.environ.get("FINK_T2_DATA", Path(__file__).resolve().parents[1] / ".." / "shared" / "data"))
ALERTS = DATA / "ztf_alerts"
AVRO_DIR = ALERTS / "night_20200101_avro"
MULTI_DIR = ALERTS / "multi_alert_avro_2019"
RAW_PARQUET = ALERTS / "night_20200101_fink_raw_parquet"
SCIENCE_PARQUET = ALERTS / "night_20211122_fink_science_parquet"

# no skip: without the real alerts this suite must fail, not pass silently
assert ALERTS.is_dir(), f"real ZTF alerts not found in {ALERTS}: set FINK_T2_DATA"


@pytest.fixture(scope="module")
def tarball(tmp_path_factory) -> Path:
    """A ztf_public_YYYYMMDD.tar.gz built from the 50 single-alert Avro files (+ one non-alert member)."""
    path = tmp_path_factory.mktemp("archive") / "ztf_public_20200101.tar.gz"
    with tarfile.open(path, "w:gz") as tar:
        for file in sorted(AVRO_DIR.glob("*.avro")):
            tar.add(file, arcname=file.name)
        tar.add(DATA / "README.md", arcname="README.md")
    return path


@pytest.fixture(scope="module")
def sources(tarball) -> dict:
    """Decoded alerts of every source, read once: name -> list of dicts."""
    return {
        "avro_dir": list(iter_alerts(AVRO_DIR)),
        "avro_files": [alert for file in sorted(MULTI_DIR.glob("*.avro")) for alert in read_avro(file)],
        "tarball": list(read_tarball(tarball)),
        "raw_parquet": list(read_fink_parquet(RAW_PARQUET)),
        "science_parquet": list(read_fink_parquet(SCIENCE_PARQUET)),
    }


EXPECTED_COUNTS = {"avro_dir": 50, "avro_files": 14, "tarball": 50, "raw_parquet": 12, "science_parquet": 124}


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_reader_counts_and_unique_candids(sources, name):
    alerts = sources[name]
    assert len(alerts) == EXPECTED_COUNTS[name]
    candids = [alert["candid"] for alert in alerts]
    assert len(set(candids)) == len(candids)
    assert all(alert["candid"] == alert["candidate"]["candid"] for alert in alerts)
    assert not any(field in alert for alert in alerts for field in CUTOUT_FIELDS)


def test_container_files_hold_several_alerts():
    counts = {file.name: sum(1 for _ in read_avro(file)) for file in MULTI_DIR.glob("*.avro")}
    assert counts == {"avro_multi_alerts.avro": 11, "avro_multi_alerts_other.avro": 3}
    assert sum(1 for _ in iter_alerts(MULTI_DIR)) == 14


def test_tarball_matches_avro_dir(sources, tarball):
    assert detect_format(tarball) == "tarball"
    assert [a["candid"] for a in sources["tarball"]] == [a["candid"] for a in sources["avro_dir"]]
    assert sum(1 for _ in iter_alerts(tarball)) == 50


def test_decode_avro_bytes_equals_read_avro():
    file = sorted(MULTI_DIR.glob("*.avro"))[0]
    assert decode_avro_bytes(file.read_bytes()) == list(read_avro(file))
    with open(file, "rb") as stream:
        assert [a["candid"] for a in read_avro(stream)] == [a["candid"] for a in read_avro(file)]


# --- a real container file with one damaged block: only that block's alerts are lost ------------


@pytest.fixture(scope="module")
def container():
    data = CONTAINER.read_bytes()
    blocks = container_blocks(data)
    assert [len(candids) for _, _, candids in blocks] == [2, 2, 2, 2, 2, 1]
    return data, blocks, list(read_avro(CONTAINER))


@pytest.mark.parametrize("how", DAMAGES)
@pytest.mark.parametrize("block", [2, 5])
def test_a_damaged_block_costs_only_its_own_alerts(container, how, block):
    data, blocks, alerts = container
    offset, size, lost = blocks[block]
    damaged = damage_block(data, offset, size, how)
    reports = []
    kept = list(read_avro(damaged, on_damage=reports.append))
    assert kept == [a for a in alerts if a["candid"] not in lost]  # the real alerts of the other blocks, intact
    assert len(kept) == len(alerts) - len(lost)
    assert [(r.offset, r.size) for r in reports] == [(offset, size)] and str(reports[0]).endswith("skipped)")
    # the same from a file on disk (read through mmap) and from bytes
    with io.BytesIO(damaged) as stream:
        assert [a["candid"] for a in read_avro(stream, on_damage=lambda r: None)] == [a["candid"] for a in kept]
    assert decode_avro_bytes(damaged, on_damage=lambda r: None) == kept
    # without on_damage the damage raises, after the alerts of the blocks before it
    seen = []
    with pytest.raises(Exception):  # noqa: B017 - fastavro raises its own or a struct/EOF error, by where the damage lies
        for alert in read_avro(damaged):
            seen.append(alert["candid"])
    assert seen == [c for _, _, candids in blocks[:block] for c in candids]


def test_two_damaged_blocks_and_a_truncated_end(container, tmp_path):
    data, blocks, alerts = container
    damaged = damage_block(damage_block(data, *blocks[1][:2], "payload"), *blocks[3][:2], "marker")
    path = tmp_path / "damaged.avro"
    path.write_bytes(damaged[:-100])  # the last block is cut short too
    reports = []
    kept = [a["candid"] for a in read_avro(path, on_damage=reports.append)]
    lost = blocks[1][2] + blocks[3][2] + blocks[5][2]
    assert kept == [a["candid"] for a in alerts if a["candid"] not in lost]
    assert [r.offset for r in reports] == [blocks[1][0], blocks[3][0], blocks[5][0]]


def test_contiguous_damaged_blocks_are_one_report(container):
    data, blocks, alerts = container
    damaged = damage_block(damage_block(data, *blocks[2][:2], "payload"), *blocks[3][:2], "count")
    reports = []
    kept = [a["candid"] for a in read_avro(damaged, on_damage=reports.append)]
    assert kept == [c for i, (_, _, candids) in enumerate(blocks) if i not in (2, 3) for c in candids]
    assert [(r.offset, r.size) for r in reports] == [(blocks[2][0], blocks[2][1] + blocks[3][1])]


def test_a_long_header_and_alternating_schemas_decode_with_their_own_header(container):
    """The header is read from its structure whatever its length (here 300 KB of extra metadata), and every
    file is decoded with its own writer schema even when parsed headers are reused across files."""
    data, blocks, alerts = container
    record = alerts[0]
    schema = fastavro.reader(io.BytesIO(data)).writer_schema
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(schema), [dict(record, cutoutScience=None, cutoutTemplate=None,
                    cutoutDifference=None)], metadata={"padding": "x" * 300_000})
    long_header = buffer.getvalue()
    other = (MULTI_DIR / "avro_multi_alerts_other.avro").read_bytes()
    expected_other = list(fastavro.reader(io.BytesIO(other)))
    for _ in range(2):
        assert decode_avro_bytes(long_header) == [record]
        assert decode_avro_bytes(data) == alerts
        assert decode_avro_bytes(other) == [{k: v for k, v in a.items() if k not in CUTOUT_FIELDS} for a in expected_other]


@pytest.mark.parametrize("data", [b"", b"Obj\x01", b"Obj\x01" + bytes(range(256)) * 8, b"PAR1 not avro"])
def test_a_file_without_a_readable_header_raises_even_with_on_damage(data):
    with pytest.raises(Exception):  # noqa: B017 - which error depends on the header's damage; any must raise
        decode_avro_bytes(data, on_damage=lambda r: None)


@pytest.mark.parametrize("name", sorted(EXPECTED_COUNTS))
def test_history_then_current_arrays(sources, name):
    alerts = sources[name]
    table = records_to_table(alerts)
    assert table.schema.equals(ALERT_SCHEMA)
    assert table.num_rows == len(alerts)
    rows = table.to_pylist()
    for alert, row in zip(alerts, rows):
        history = alert["prv_candidates"] or []
        candidate = alert["candidate"]
        assert row["candid"] == alert["candid"] and row["objectId"] == alert["objectId"]
        assert row["jd"] == candidate["jd"] and row["fid"] == candidate["fid"]
        for field, _ in HISTORY_FIELDS:
            values = row["c" + field]
            assert len(values) == len(history) + 1
            assert values[:-1] == [previous[field] for previous in history]
            assert values[-1] == candidate[field]
        assert row["cjd"] == sorted(row["cjd"])  # ZTF history is chronological


def test_upper_limits_kept_as_null(sources):
    table = records_to_table(sources["avro_dir"])
    for row in table.to_pylist():
        # first detections: every history point is an upper limit
        assert row["cmagpsf"][:-1] == [None] * (len(row["cmagpsf"]) - 1)
        assert row["csigmapsf"][:-1] == [None] * (len(row["csigmapsf"]) - 1)
        assert None not in row["cdiffmaglim"] and None not in row["cjd"]
        assert row["cmagpsf"][-1] is not None
    assert pa.compute.sum(pa.compute.list_value_length(table["cmagpsf"])).as_py() == 198
    assert sum(v is None for row in table["cmagpsf"].to_pylist() for v in row) == 148


def test_science_parquet_roid_and_cdsxmatch_from_record(sources):
    alerts = sources["science_parquet"]
    table = records_to_table(alerts)
    assert table["roid"].to_pylist() == [a["roid"] for a in alerts]
    assert table["cdsxmatch"].to_pylist() == [a["cdsxmatch"] for a in alerts]
    assert table["roid"].to_pylist().count(3) == 1
    assert len(set(table["cdsxmatch"].to_pylist()) - {"Unknown"}) > 10
    # the derived rule agrees with what Fink computed on these alerts
    assert [derive_roid(a["candidate"]) for a in alerts] == [a["roid"] for a in alerts]


def test_roid_and_cdsxmatch_derived_without_fink_columns(sources):
    stripped = [{k: v for k, v in a.items() if k not in ("roid", "cdsxmatch")} for a in sources["science_parquet"]]
    table = records_to_table(stripped)
    assert table["roid"].to_pylist() == [a["roid"] for a in sources["science_parquet"]]
    assert set(table["cdsxmatch"].to_pylist()) == {"Unknown"}
    night = records_to_table(sources["avro_dir"])
    assert set(night["roid"].to_pylist()) == {0} and set(night["cdsxmatch"].to_pylist()) == {"Unknown"}
    # Spark-written container file: 3 alerts matched by ZTF to a numbered asteroid
    multi = records_to_table(sources["avro_files"])
    assert multi["roid"].to_pylist().count(3) == 3


def test_same_alerts_same_rows_across_formats(sources):
    raw = records_to_table(sources["raw_parquet"]).to_pylist()
    by_candid = {row["candid"]: row for row in records_to_table(sources["avro_dir"]).to_pylist()}
    assert raw and all(row == by_candid[row["candid"]] for row in raw)


def test_missing_fields_become_null():
    records = [
        {"objectId": "ZTF_a", "candidate": {"jd": 2459000.5, "candid": 7}, "prv_candidates": [{"jd": 2459000.0}]},
        {"candid": 8, "candidate": {"jd": 2459001.5, "fid": 1, "magpsf": 18.0, "new_4x_field": 1.0}},
        {"objectId": "ZTF_c", "candidate": None, "prv_candidates": []},
    ]
    rows = records_to_table(records).to_pylist()
    assert rows[0]["candid"] == 7 and rows[0]["magpsf"] is None and rows[0]["cjd"] == [2459000.0, 2459000.5]
    assert rows[0]["cmagpsf"] == [None, None] and rows[0]["cfid"] == [None, None]
    assert rows[1]["objectId"] is None and rows[1]["cmagpsf"] == [18.0] and rows[1]["cisdiffpos"] == [None]
    assert rows[2]["cjd"] == [None] and rows[2]["roid"] == 0 and rows[2]["cdsxmatch"] == "Unknown"
    assert records_to_table([]).num_rows == 0


def test_detect_format(tmp_path, tarball):
    assert detect_format(AVRO_DIR) == "avro_dir"
    assert detect_format(MULTI_DIR / "avro_multi_alerts.avro") == "avro_file"
    assert detect_format(RAW_PARQUET) == "parquet"
    assert detect_format(next(SCIENCE_PARQUET.glob("*.parquet"))) == "parquet"
    # no suffix: recognised by magic bytes
    shutil.copy(AVRO_DIR / "1095578115815010001.avro", tmp_path / "alert_bin")
    shutil.copy(next(RAW_PARQUET.glob("*.parquet")), tmp_path / "part_bin")
    shutil.copy(tarball, tmp_path / "night_bin")
    assert [detect_format(tmp_path / n) for n in ("alert_bin", "part_bin", "night_bin")] == [
        "avro_file", "parquet", "tarball"]


def test_detect_format_errors(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        detect_format(tmp_path / "missing")
    with pytest.raises(ValueError, match="no .parquet nor .avro"):
        detect_format(tmp_path)
    (tmp_path / "notes.txt").write_text("not an alert")
    with pytest.raises(ValueError, match="unknown format"):
        detect_format(tmp_path / "notes.txt")
    with pytest.raises(ValueError, match="does not exist"):
        list(iter_alerts(tmp_path / "missing"))


@pytest.mark.parametrize("batch_size, sizes", [(50, [50, 50, 24]), (124, [124]), (1000, [124]), (1, [1] * 124)])
def test_chunks_bounded_by_batch_size(batch_size, sizes):
    tables = list(iter_alert_tables(SCIENCE_PARQUET, batch_size=batch_size))
    assert [t.num_rows for t in tables] == sizes
    assert all(t.schema.equals(ALERT_SCHEMA) for t in tables)
    whole = records_to_table(read_fink_parquet(SCIENCE_PARQUET))
    assert pa.concat_tables(tables).equals(whole)


def test_chunks_of_tarball_and_bad_batch_size(tarball):
    assert [t.num_rows for t in iter_alert_tables(tarball, batch_size=16)] == [16, 16, 16, 2]
    with pytest.raises(ValueError, match="batch_size"):
        next(iter_alert_tables(AVRO_DIR, batch_size=0))


# --- comparison with Fink's own Spark implementation --------------------------------------------
# ``spark`` is the one local session of the whole test run (tests/conftest.py).


@pytest.mark.slow
def test_c_columns_match_fink_concat_col(spark):
    from fink_utils.spark import utils
    df = spark.read.parquet(str(SCIENCE_PARQUET))
    for name in ("jd", "fid", "magpsf"):
        df = utils.concat_col(df, name)
    expected = {row["candid"]: row.asDict() for row in df.select("candid", "cjd", "cfid", "cmagpsf").collect()}
    table = records_to_table(read_fink_parquet(SCIENCE_PARQUET))
    assert len(expected) == table.num_rows == 124
    for row in table.select(["candid", "cjd", "cfid", "cmagpsf"]).to_pylist():
        assert row == expected[row["candid"]]
