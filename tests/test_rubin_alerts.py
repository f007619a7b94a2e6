"""Rubin alerts into the Rubin alert table (fink_t2.alerts.rubin): the real lsst.v10_0 samples (Fink Rubin
parquet, Fink's Rubin output as an Avro container, single-alert Avro files written from the parquet sample with
the container's own schema), ELAsTiCC mapped to the same names, survey detection, and damaged copies."""

import copy
import io
import math
from pathlib import Path

import fastavro
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from alert_files import DAMAGES, damage_block

from fink_t2.alerts.rubin import (
    RUBIN_DECODED_SCHEMA,
    decode_rubin_bytes,
    file_survey,
    iter_rubin_tables,
    packet_survey,
    read_rubin_table,
)
from fink_t2.alerts.rubin_table import rubin_records_to_table
from fink_t2.paths import SHARED_DATA

LSST = Path(SHARED_DATA) / "lsst_alerts"
PARQUET = LSST / "rubin_sample_data_10_0.parquet"
CONTAINER = LSST / "part-2-918301.avro"
ELASTICC = LSST / "elasticc_sample_seed0.parquet"
ZTF_AVRO = Path(SHARED_DATA) / "ztf_alerts" / "multi_alert_avro_2019" / "avro_multi_alerts.avro"
BANDS = set("ugrizy")


def fink_records(path: Path = CONTAINER) -> list[dict]:
    """Every field of every alert of a container file, decoded by fastavro alone (the reference)."""
    with open(path, "rb") as stream:
        return list(fastavro.reader(stream))


def alerts(table: pa.Table) -> list[dict]:
    return [row for row in table.to_pylist() if row["ingest_error"] is None]


def errors(table: pa.Table) -> list[str]:
    return [e for e in table.column("ingest_error").to_pylist() if e is not None]


def test_fink_parquet_sample_every_alert_and_concat_col_arrays():
    source = pq.read_table(PARQUET, columns=["diaSourceId", "diaSource", "prvDiaSources", "prvDiaForcedSources"])
    table = read_rubin_table(PARQUET)
    assert table.schema.equals(RUBIN_DECODED_SCHEMA)
    rows = alerts(table)
    assert len(rows) == table.num_rows == 25 and not errors(table)
    for row, packet in zip(rows, source.to_pylist()):
        current, history = packet["diaSource"], packet["prvDiaSources"] or []
        assert row["diaSourceId"] == packet["diaSourceId"] == current["diaSourceId"]
        assert row["diaObjectId"] == current["diaObjectId"] and row["band"] == current["band"]
        for name in ("midpointMjdTai", "psfFlux", "psfFluxErr", "band"):  # history then current, as concat_col
            assert row["c" + name] == [s[name] for s in history] + [current[name]]
        assert row["fpsfFlux"] == ([] if packet["prvDiaForcedSources"] is not None else None)
        assert set(row["cband"]) <= BANDS and row["source_file"] == str(PARQUET)
    assert sum(len(r["cpsfFlux"]) > 1 for r in rows) == 3  # the three alerts of the sample with a history
    # the three SSO alerts: no diaObject, an ssSource with a designation
    sso = [r for r in rows if r["is_sso"]]
    assert len(sso) == 3 and all(r["diaObjectId"] == 0 and r["ssSource_designation"] for r in sso)
    # this parquet stores ssSource.ssObjectId as a double (pandas): equal to diaSource's at float64 precision
    assert all(float(r["ssSource_ssObjectId"]) == float(r["ssObjectId"]) for r in sso)
    # nDiaSources is a double there too: whole numbers, kept as int
    n_sources = [(p["diaObject"] or {}).get("nDiaSources") for p in pq.read_table(PARQUET, columns=["diaObject"]).to_pylist()]
    assert [r["diaObject_nDiaSources"] for r in rows] == n_sources and None not in n_sources[:5]


def test_values_a_column_cannot_hold_become_null_not_a_lost_batch():
    packets = [{"diaSource": {"diaSourceId": 1, "band": "g", "psfFlux": 10.0}, "diaObject": {"nDiaSources": 3.0}},
               {"diaSource": {"diaSourceId": 2, "band": "r", "psfFlux": "bad"}, "diaObject": {"nDiaSources": float("nan")},
                "prvDiaSources": [{"psfFlux": 5.0, "band": "r"}, {"psfFlux": [1], "band": 7}]}]
    rows = rubin_records_to_table(packets).to_pylist()
    assert [r["diaObject_nDiaSources"] for r in rows] == [3, None]
    assert rows[1]["psfFlux"] is None and rows[1]["cpsfFlux"] == [5.0, None, None]
    assert rows[1]["cband"] == ["r", None, "r"] and rows[0]["cpsfFlux"] == [10.0]


def test_fink_avro_container_agrees_with_finks_own_columns():
    table = read_rubin_table(CONTAINER)
    rows, packets = alerts(table), fink_records()
    assert len(rows) == len(packets) == 7 and not errors(table)
    for row, packet in zip(rows, packets):
        assert row["diaSourceId"] == packet["diaSourceId"]
        assert row["is_sso"] == packet["pred"]["is_sso"]  # Fink's own SSO flag (all-null ssSource struct: not SSO)
        # Fink's firstDiaSourceMjdTaiFink: the first time of prvDiaSources, else the current one
        assert min(row["cmidpointMjdTai"]) == packet["misc"]["firstDiaSourceMjdTaiFink"]
        assert len(row["cpsfFlux"]) == len(packet["prvDiaSources"] or []) + 1
        forced = packet["prvDiaForcedSources"]
        assert row["fmidpointMjdTai"] == (None if forced is None else [f["midpointMjdTai"] for f in forced])
        assert all(math.isclose(a, b["psfFlux"], rel_tol=1e-7) for a, b in zip(row["fpsfFlux"] or [], forced or []))
        assert set(row["fband"] or []) <= BANDS and row["lsst_schema_version"] == "lsst.v10_0"
    assert max(len(r["cpsfFlux"]) for r in rows) == 392  # 391 prvDiaSources + the current one
    assert sum(len(r["fpsfFlux"] or []) for r in rows) == 2321
    # decoding only the table's fields (the reader schema) gives what decoding everything gives
    full = rubin_records_to_table(packets)
    assert table.select(full.column_names).equals(full)


def test_elasticc_mapped_to_v10_names():
    source = pq.read_table(ELASTICC).to_pylist()
    table = read_rubin_table(ELASTICC)
    rows = alerts(table)
    assert len(rows) == 89 and not errors(table)
    for row, packet in zip(rows, source):
        current, history = packet["diaSource"], packet["prvDiaSources"] or []
        assert row["diaSourceId"] == current["diaSourceId"] and row["diaObjectId"] == current["diaObjectId"]
        assert row["cmidpointMjdTai"] == [s["midPointTai"] for s in history] + [current["midPointTai"]]
        assert row["cpsfFlux"] == [s["psFlux"] for s in history] + [current["psFlux"]]
        assert row["cband"] == [s["filterName"].lower() for s in history] + [current["filterName"].lower()]
        assert row["dec"] == current["decl"] and row["lsst_schema_version"] is None and not row["is_sso"]
        forced = packet["prvDiaForcedSources"]
        assert row["fpsfFluxErr"] == (None if forced is None else [f["psFluxErr"] for f in forced])
    bands = {band for row in rows for band in row["cband"] + (row["fband"] or [])}
    assert bands == BANDS  # "Y" became "y"
    assert sum(row["fband"] is None for row in rows) == 20


def conform(value, avro_type):
    """A parquet value as the Avro type wants it: this parquet holds some long fields (diaObject.diaObjectId,
    ssSource.ssObjectId, nDiaSources) as doubles, which a Rubin packet holds as longs. The container's schema
    (written by Spark) has non-nullable ``diaObject`` and ``ssSource`` records: a missing one is written as a
    record of nulls, as in Fink's own file."""
    if isinstance(avro_type, dict) and avro_type["type"] == "record" and value is None:
        value = {}
    if value is None or isinstance(avro_type, str):
        return int(value) if avro_type in ("long", "int") and isinstance(value, float) else value
    if isinstance(avro_type, list):
        return conform(value, next(t for t in avro_type if t != "null"))
    if avro_type["type"] == "array":
        return [conform(item, avro_type["items"]) for item in value]
    if avro_type["type"] == "record":
        return {f["name"]: conform(value.get(f["name"]), f["type"]) for f in avro_type["fields"]}
    return value


def single_alert_files(folder: Path) -> list[Path]:
    """The 25 parquet alerts as single-alert lsst.v10_0 Avro files, written with the schema read from the
    header of Fink's Rubin container file, cut down to the lsst.v10_0 fields (no Fink columns)."""
    schema = copy.deepcopy(fastavro.reader(io.BytesIO(CONTAINER.read_bytes())).writer_schema)
    names = set(pq.read_schema(PARQUET).names)
    schema["fields"] = [f for f in schema["fields"] if f["name"] in names]
    parsed = fastavro.parse_schema(schema)
    folder.mkdir()
    files = []
    for packet in pq.read_table(PARQUET).to_pylist():
        path = folder / f"{packet['diaSourceId']}.avro"
        with open(path, "wb") as stream:
            fastavro.writer(stream, parsed, [conform(packet, schema)])
        files.append(path)
    return files


def test_single_alert_avro_files_give_the_parquet_table(tmp_path):
    files = single_alert_files(tmp_path / "night")
    from_avro = read_rubin_table(tmp_path / "night")
    from_parquet = read_rubin_table(PARQUET)
    assert from_avro.num_rows == len(files) == 25 and not errors(from_avro)
    key = [name for name in from_avro.column_names if name != "source_file"]
    by_id = {row["diaSourceId"]: row for row in from_parquet.select(key).to_pylist()}
    for row in from_avro.select(key).to_pylist():  # Avro floats are float32: compare at that precision
        expected = by_id.pop(row["diaSourceId"])
        for name, value in row.items():
            if isinstance(value, float):
                assert math.isclose(value, expected[name], rel_tol=1e-6), name
            elif name in ("cpsfFlux", "cpsfFluxErr"):
                assert all(math.isclose(a, b, rel_tol=1e-6) for a, b in zip(value, expected[name]))
            else:
                assert value == expected[name], name
    assert not by_id


def test_survey_detected_from_schema_fields(tmp_path):
    assert file_survey(PARQUET) == file_survey(CONTAINER) == file_survey(ELASTICC) == "rubin"
    assert file_survey(ZTF_AVRO) == "ztf"
    assert file_survey(Path(SHARED_DATA) / "ztf_alerts" / "night_20211122_fink_science_parquet") == "ztf"
    renamed = tmp_path / "alerts.parquet"  # the name says nothing: the fields do
    renamed.write_bytes(CONTAINER.read_bytes())
    renamed = renamed.rename(tmp_path / "ztf_public_20200101.avro")
    assert file_survey(renamed) == "rubin"
    assert file_survey(tmp_path / "ztf_public_20200101.tar.gz") == "ztf"  # a nightly archive, by its name
    assert packet_survey(["something"]) is None
    (tmp_path / "notes.avro").write_text("not an alert")
    with pytest.raises(ValueError):
        file_survey(tmp_path / "notes.avro")


def container_blocks(data: bytes) -> list[tuple[int, int, int]]:
    """(offset, size with marker, diaSourceId) of each block of an intact container file (one alert each)."""
    return [(b.offset, b.size, next(iter(b))["diaSourceId"]) for b in fastavro.block_reader(io.BytesIO(data))]


@pytest.mark.parametrize("how", DAMAGES)
def test_a_damaged_block_costs_only_its_own_alert(how):
    data = CONTAINER.read_bytes()
    blocks = container_blocks(data)
    assert len(blocks) == 7
    offset, size, lost = blocks[3]
    table = pa.concat_tables(decode_rubin_bytes("damaged.avro", damage_block(data, offset, size, how)))
    assert [r["diaSourceId"] for r in alerts(table)] == [b[2] for b in blocks if b[2] != lost]
    [error] = errors(table)
    assert "damaged Avro block" in error and str(offset) in error


def test_arrow_buffers_as_sparks_binaryfile_source_gives_them():
    for path in (CONTAINER, PARQUET):
        from_buffer = pa.concat_tables(decode_rubin_bytes(str(path), pa.py_buffer(path.read_bytes())))
        assert from_buffer.equals(read_rubin_table(path))


def test_truncated_and_unreadable_files_are_rows_not_exceptions(tmp_path):
    data = CONTAINER.read_bytes()
    blocks = container_blocks(data)
    cut = blocks[-1][0] + blocks[-1][1] // 2  # in the middle of the last block
    table = pa.concat_tables(decode_rubin_bytes("cut.avro", data[:cut]))
    assert len(alerts(table)) == 6 and len(errors(table)) == 1
    for name, content in [("header.avro", data[:1000]), ("flipped.avro", data[:40] + b"\xff" * 64 + data[104:]),
                          ("cut.parquet", PARQUET.read_bytes()[:800_000]), ("empty.avro", b""),
                          ("ztf.avro", ZTF_AVRO.read_bytes())]:
        table = pa.concat_tables(decode_rubin_bytes(name, content))
        assert table.num_rows == 1 and table.column("source_file").to_pylist() == [name], name
        assert table.column("diaSourceId").null_count == 1 and errors(table), name
    assert "not Rubin alerts" in errors(pa.concat_tables(decode_rubin_bytes("ztf.avro", ZTF_AVRO.read_bytes())))[0]


def test_a_damaged_parquet_page_is_reported_for_its_row_group():
    data = bytearray(PARQUET.read_bytes())
    data[2000:2100] = bytes(b ^ 0xFF for b in data[2000:2100])  # the first page header of the row group
    table = pa.concat_tables(decode_rubin_bytes("flipped.parquet", bytes(data)))
    [error] = errors(table)
    assert table.num_rows == 1 and "row group 0: 25 alerts lost, 0 read" in error


def test_a_damaged_row_group_costs_only_its_own_alerts(tmp_path):
    path = tmp_path / "groups.parquet"
    pq.write_table(pq.read_table(PARQUET), path, row_group_size=5)  # 5 row groups of 5 alerts
    data = bytearray(path.read_bytes())
    chunk = pq.ParquetFile(path).metadata.row_group(2).column(0)  # diaSourceId of the third group
    start = chunk.dictionary_page_offset or chunk.data_page_offset
    data[start : start + 16] = b"\xff" * 16
    table = pa.concat_tables(decode_rubin_bytes(str(path), bytes(data)))
    expected = pq.read_table(PARQUET, columns=["diaSourceId"]).column(0).to_pylist()
    assert [r["diaSourceId"] for r in alerts(table)] == expected[:10] + expected[15:]
    [error] = errors(table)
    assert "row group 2: 5 alerts lost, 0 read" in error


def test_a_folder_of_good_and_bad_files_loses_nothing(tmp_path):
    folder = tmp_path / "night"
    files = single_alert_files(folder)
    files[0].write_bytes(files[0].read_bytes()[:-30])  # a truncated single-alert file
    (folder / "zero.avro").write_bytes(b"")
    (folder / "_SUCCESS.parquet").write_bytes(b"skipped: Spark's marker naming")
    tables = list(iter_rubin_tables(folder, batch_size=1))
    table = pa.concat_tables(tables)
    assert all(t.num_rows == 1 for t in tables)
    assert len(alerts(table)) == 24 and len(errors(table)) == 2
    bad = {row["source_file"] for row in table.to_pylist() if row["ingest_error"] is not None}
    assert bad == {str(files[0]), str(folder / "zero.avro")}
    with pytest.raises(ValueError, match="does not exist"):
        next(iter_rubin_tables(tmp_path / "missing"))


@pytest.mark.slow
def test_c_columns_match_fink_concat_col_on_rubin_parquet(spark):
    from fink_utils.spark.utils import concat_col

    df = spark.read.parquet(str(PARQUET))
    for name in ("midpointMjdTai", "band", "psfFlux", "psfFluxErr"):  # fink-broker rubin/science.py's to_expand
        df = concat_col(df, name, current="diaSource", history="prvDiaSources")
    columns = ["cmidpointMjdTai", "cband", "cpsfFlux", "cpsfFluxErr"]
    expected = {row["diaSourceId"]: row.asDict() for row in df.select("diaSourceId", *columns).collect()}
    table = read_rubin_table(PARQUET)
    assert len(expected) == table.num_rows == 25
    for row in table.select(["diaSourceId"] + columns).to_pylist():
        assert row == expected[row["diaSourceId"]]
