"""The binaryFile source: each input file decoded into Fink's layout, bad bytes into one row with the error,
a damaged Avro block into one row beside the alerts of the good blocks (docs/reliability.md)."""

from __future__ import annotations

import pyarrow.compute as pc
from alert_files import AVRO_NIGHT, CONTAINER, container_blocks, damage_block

from fink_t2.alerts import read_avro, read_fink_parquet, records_to_table
from fink_t2.alerts.binaryfile import DECODED_SCHEMA, decode_file, empty_files
from fink_t2.alerts.layout import CANDIDATE_FIELDS, nest


def test_decode_file_turns_bad_bytes_into_one_row_with_the_error():
    real = sorted(AVRO_NIGHT.glob("*.avro"))[0].read_bytes()
    for name, data in {"a.avro": real[: len(real) // 2], "b.avro": b"", "c.avro": b"Obj\x01xyz", "d.parquet": b"PAR1"}.items():
        table = decode_file(name, data)
        assert table.num_rows == 1 and table.column("candid").null_count == 1
        assert table.column("source_file").to_pylist() == [name] and table.column("ingest_error")[0].as_py()


def test_schema_33_and_4x_alerts_decode_alike(mixed_night):
    table4 = decode_file("x.avro", (mixed_night["path"] / "alert_4x.avro").read_bytes())
    table33 = records_to_table([mixed_night["v4"]])
    row4, row33 = table4.to_pylist()[0], table33.to_pylist()[0]
    assert row4.pop("ingest_error") is None and row4.pop("source_file") == "x.avro"
    # Fink's layout and nothing else; an Avro alert is raw (no cdsxmatch of its own: null, the raw filter's to judge)
    assert table4.column_names[:3] == ["objectId", "candid", "candidate"] and "raw_filter" not in table4.column_names
    assert row4["cdsxmatch"] is None
    candidate = row4.pop("candidate")
    assert candidate["ssnamenr"] is None  # removed from the 4.x schema: null, no KeyError
    row4.update(candidate)
    row33["ssnamenr"], row33["roid"], row33["cdsxmatch"] = None, row4["roid"], row4["cdsxmatch"]
    assert row4 == row33 and set(candidate) == set(CANDIDATE_FIELDS)


def test_a_damaged_block_becomes_one_row_beside_the_alerts_of_the_good_blocks():
    data = CONTAINER.read_bytes()
    blocks = container_blocks(data)
    offset, size, lost = blocks[2]
    table = decode_file("file:/night/avro_multi_alerts.avro", damage_block(data, offset, size, "payload"))
    good = table.filter(pc.is_null(table.column("ingest_error")))
    errors = table.filter(pc.is_valid(table.column("ingest_error"))).to_pylist()
    kept = [a for a in read_avro(CONTAINER) if a["candid"] not in lost]
    expected = nest(records_to_table(kept, raw_cdsxmatch=None)).drop_columns(["source_file", "ingest_error"])
    assert good.drop_columns(["source_file", "ingest_error"]).equals(expected)  # real alerts, intact
    assert good.num_rows == 9 and set(good.column("source_file").to_pylist()) == {"file:/night/avro_multi_alerts.avro"}
    assert len(errors) == 1 and errors[0]["candid"] is None and errors[0]["source_file"] == "file:/night/avro_multi_alerts.avro"
    assert "damaged" in errors[0]["ingest_error"] and f"bytes {offset}-{offset + size} skipped" in errors[0]["ingest_error"]
    assert table.schema.equals(DECODED_SCHEMA)


def test_the_format_of_each_file_comes_from_the_one_rule(shared_data):
    """Name first, then magic bytes (fink_t2.alerts.sources.file_format), as detect_format: a single input file
    without a suffix is decoded by what it holds."""
    avro = (AVRO_NIGHT / "1095578115815010001.avro").read_bytes()
    part = sorted((shared_data / "ztf_alerts" / "night_20200101_fink_raw_parquet").glob("*.parquet"))[0]
    assert decode_file("file:/x/alert_bin", avro).column("candid").to_pylist() == [1095578115815010001]
    from_parquet = decode_file("file:/x/part_bin", part.read_bytes())
    expected = [a["candid"] for a in read_fink_parquet(part)]
    assert len(expected) > 1 and from_parquet.column("candid").to_pylist() == expected
    assert from_parquet.column("ingest_error").null_count == len(expected)
    other = decode_file("file:/x/notes", b"not an alert at all").to_pylist()
    assert len(other) == 1 and other[0]["ingest_error"].startswith("ValueError: not an alert file")


def test_empty_files_are_found_as_spark_lists_files(tmp_path):
    night = tmp_path / "night"
    (night / "sub").mkdir(parents=True)
    (night / "_hidden").mkdir()
    for name in ("a.avro", "sub/b.avro", "_hidden/c.avro", "_d.avro", ".e.avro", "f.parquet"):
        (night / name).write_bytes(b"")
    (night / "g.avro").write_bytes((AVRO_NIGHT / "1095578115815010001.avro").read_bytes())
    assert empty_files(str(night), "avro_dir") == [str(night / "a.avro"), str(night / "sub" / "b.avro")]
    assert empty_files(str(night), "parquet") == [str(night / "f.parquet")]
    assert empty_files(str(night / "a.avro"), "avro_file") == [str(night / "a.avro")]
    assert empty_files(str(night / "g.avro"), "avro_file") == []
