"""`fink-t2 replay` and `fink-t2 report` on Rubin alerts: the real lsst.v10_0 samples (Fink Rubin parquet, Fink's
Rubin output as an Avro container, single-alert Avro files written from that container's records with its own
schema) and ELAsTiCC alerts, told from the data; every alert exactly once with a status, damaged copies kept aside,
the same results as the Fink Rubin UDF, and the report's six bands."""

import io
import json
import math
import re
from pathlib import Path

import fastavro
import pytest
from alert_files import AVRO_NIGHT
from replay_helpers import assert_refused, replay_cli, split_output

from fink_t2.alerts.rubin import read_rubin_table
from fink_t2.alerts.rubin_table import CLASSIFIER_INPUTS
from fink_t2.core.cuts import REJECTED, STATUS_OK, STATUS_UNREADABLE
from fink_t2.core.rubin_classifier import classify_rubin_columns
from fink_t2.core.rubin_cuts import STATUSES
from fink_t2.paths import SHARED_DATA
from fink_t2.rubin_processor import rubin_model
from fink_t2.runtime.inference import load_model
from fink_t2.stream.output import UNREADABLE_DIR
from fink_t2.stream.replay import replay
from fink_t2.stream.rubin_stage import RUBIN_OUTPUT_SPARK_SCHEMA
from fink_t2.stream.stages import OUTPUT_SPARK_SCHEMA
from fink_t2.stream.survey import input_survey

pytestmark = pytest.mark.slow

LSST = Path(SHARED_DATA) / "lsst_alerts"
PARQUET = LSST / "rubin_sample_data_10_0.parquet"
CONTAINER = LSST / "part-2-918301.avro"
ELASTICC = LSST / "elasticc_sample_seed0.parquet"
SAMPLES = {"lsst.v10_0 parquet": (PARQUET, 25), "Fink Rubin Avro container": (CONTAINER, 7),
           "ELAsTiCC parquet": (ELASTICC, 89)}


@pytest.fixture(scope="module")
def model():
    return load_model(rubin_model())


def expected_rows(path, model) -> dict:
    """diaSourceId → (status, decision, probabilities) from the plain reader and the core, outside Spark."""
    table = read_rubin_table(path)
    result = classify_rubin_columns(*(table.column(name).to_pandas() for name in CLASSIFIER_INPUTS), model)
    ids = table.column("diaSourceId").to_pylist()
    return {i: (s, lab, p) for i, s, lab, p in zip(ids, result.status, result.label, result.proba.tolist())}


def single_alert_files(folder: Path, records: list[dict], schema: dict) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    parsed = fastavro.parse_schema(schema)
    files = []
    for record in records:
        files.append(folder / f"{record['diaSourceId']}.avro")
        with open(files[-1], "wb") as stream:
            fastavro.writer(stream, parsed, [record])
    return files


@pytest.fixture(scope="module")
def container():
    with open(CONTAINER, "rb") as stream:
        reader = fastavro.reader(stream)
        return list(reader), reader.writer_schema


@pytest.mark.parametrize("name", SAMPLES)
def test_each_rubin_sample_replays_every_alert_once_with_a_status(spark, tmp_path, model, name):
    path, n = SAMPLES[name]
    out = tmp_path / "out"
    summary = replay(str(path), str(out), progress=False)
    df = spark.read.parquet(str(out))
    assert df.schema == RUBIN_OUTPUT_SPARK_SCHEMA
    rows = df.toPandas()
    assert summary["survey"] == "rubin" and summary["alerts_in_output"] == len(rows) == n
    assert rows.diaSourceId.is_unique and rows.t2_status.notna().all() and set(rows.t2_status) <= set(STATUSES)
    expected = expected_rows(path, model)
    assert set(rows.diaSourceId) == set(expected)
    for row in rows.itertuples():
        status, label, proba = expected[row.diaSourceId]
        assert (row.t2_status, row.t2_class) == (status, label)
        assert dict(row.t2) == pytest.approx(dict(zip(model.class_names, proba)))
    assert summary["classified"] == (rows.t2_status == STATUS_OK).sum() > 0
    assert summary["rejected_by_cuts"] == dict(sorted(rows[rows.t2_status != STATUS_OK].t2_status.value_counts().items()))
    assert summary["unreadable_files"] == 0 and summary["alerts_processed_this_run"] == n
    again = replay(str(path), str(out), progress=False)  # exactly once: a rerun adds nothing
    assert again["alerts_in_output"] == n and again["alerts_processed_this_run"] == 0
    assert spark.read.parquet(str(out)).count() == n


def test_the_replay_gives_what_the_fink_rubin_udf_gives(spark, tmp_path):
    """The Fink Rubin UDF on Spark's own parquet reader (c* columns by concat_col, as fink-broker builds them)."""
    from fink_utils.spark.utils import concat_col

    from fink_t2.rubin_processor import t2_rubin, t2_rubin_columns

    df = spark.read.parquet(str(PARQUET))
    for name in ("midpointMjdTai", "band", "psfFlux", "psfFluxErr"):
        df = concat_col(df, name, prefix="c", current="diaSource", history="prvDiaSources")
    udf = {r.diaSourceId: r.t2 for r in df.withColumn("t2", t2_rubin(*t2_rubin_columns(df)))
           .select("diaSourceId", "t2").collect()}
    replay(str(PARQUET), str(tmp_path / "out"), progress=False)
    rows = spark.read.parquet(str(tmp_path / "out")).collect()
    assert len(rows) == len(udf) == 25
    for row in rows:
        want = udf[row.diaSourceId]
        assert (row.t2_status, row.t2_class) == (want.status, want.decision)
        assert all(math.isclose(row.t2[k], v, abs_tol=1e-6) for k, v in want.probabilities.items())


def test_single_alert_files_damaged_copies_and_new_files(spark, tmp_path, container):
    """Single-alert lsst.v10_0 Avro files (the container's records, its own schema): a truncated copy and a garbage
    file are kept aside without stopping the stream; files added later are all the rerun adds."""
    records, schema = container
    night = tmp_path / "night"
    files = single_alert_files(night, records[:5], schema)
    data = files[0].read_bytes()
    (night / "truncated.avro").write_bytes(data[: len(data) * 2 // 3])
    (night / "garbage.avro").write_bytes(b"Obj\x01" + bytes(range(256)) * 4)
    out = tmp_path / "out"
    summary = replay(str(night), str(out), progress=False)
    parts = split_output(spark, out)  # split in Spark: a null diaSourceId would make pandas use floats
    good, bad = parts["good"], parts["errors"]
    assert sorted(good.diaSourceId) == sorted(r["diaSourceId"] for r in records[:5])
    assert good.t2_status.isin(STATUSES).all() and summary["classified"] == (good.t2_status == STATUS_OK).sum()
    assert set(bad.t2_status) == {STATUS_UNREADABLE} and {Path(p).name for p in bad.source_file} == {
        "truncated.avro", "garbage.avro"}
    assert all(set(dict(m).values()) == {REJECTED} for m in bad.t2) and bad.t2_class.isna().all()
    assert summary["unreadable_files"] == 2 and summary["alerts_in_output"] == 7
    kept = json.loads((out / UNREADABLE_DIR / "index.json").read_text())
    assert sorted(e["kept_as"] for e in kept) == ["garbage.avro", "truncated.avro"]
    # two new files: the rerun adds exactly their alerts; one more rerun adds nothing
    single_alert_files(night, records[5:], schema)
    more = replay(str(night), str(out), progress=False)
    assert more["alerts_processed_this_run"] == 2 and more["alerts_in_output"] == 9
    assert sorted(split_output(spark, out)["good"].diaSourceId) == sorted(r["diaSourceId"] for r in records)
    assert replay(str(night), str(out), progress=False)["alerts_processed_this_run"] == 0


def test_a_truncated_container_keeps_its_good_blocks(spark, tmp_path):
    data = CONTAINER.read_bytes()
    blocks = list(fastavro.block_reader(io.BytesIO(data)))
    cut = blocks[-1].offset + blocks[-1].size // 2  # in the middle of the last block
    (tmp_path / "cut.avro").write_bytes(data[:cut])
    summary = replay(str(tmp_path / "cut.avro"), str(tmp_path / "out"), progress=False)
    parts = split_output(spark, tmp_path / "out")
    assert len(parts["errors"]) == 1 and len(parts["good"]) == parts["good"].diaSourceId.nunique() == 6
    assert summary["unreadable_files"] == 1 and (tmp_path / "out" / UNREADABLE_DIR / "cut.avro").is_file()


def test_a_folder_mixing_ztf_and_rubin_files_is_refused_before_writing(tmp_path, container):
    night = tmp_path / "night"
    single_alert_files(night, container[0][:1], container[1])
    ztf = sorted(AVRO_NIGHT.glob("*.avro"))[0]
    (night / ztf.name).write_bytes(ztf.read_bytes())
    with pytest.raises(ValueError, match="mixes ZTF and Rubin"):
        input_survey(night, "avro_dir")
    out = tmp_path / "out"
    assert_refused(replay_cli(night, "--output", out), "mixes ZTF and Rubin", ztf.name)
    assert not out.exists()


def test_the_cli_prints_the_rubin_summary_and_refuses_a_ztf_model(tmp_path):
    proc = replay_cli(CONTAINER, "--output", tmp_path / "out", timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    assert (summary["survey"], summary["alerts_in_output"], summary["unreadable_files"]) == ("rubin", 7, 0)
    assert summary["classified"] + sum(summary["rejected_by_cuts"].values()) == 7
    from fink_t2.runtime.model_ref import DEFAULT_MODEL_PATH  # the ZTF g/r model cannot read Rubin alerts

    assert_refused(replay_cli(CONTAINER, "--output", tmp_path / "other", "--model", DEFAULT_MODEL_PATH), "Rubin")
    assert not (tmp_path / "other").exists()


def test_ztf_outputs_keep_their_schema(spark, tmp_path):
    summary = replay(str(AVRO_NIGHT), str(tmp_path / "out"), progress=False)
    assert summary["survey"] == "ztf"
    assert spark.read.parquet(str(tmp_path / "out")).schema == OUTPUT_SPARK_SCHEMA


def test_the_report_shows_six_bands_and_the_rubin_classes(tmp_path, monkeypatch, model):
    from fink_t2 import report

    out = tmp_path / "out"
    replay(str(ELASTICC), str(out), progress=False)
    figures = []
    original = report._png
    monkeypatch.setattr(report, "_png", lambda fig, path: figures.append(fig) or original(fig, path))
    result = report.write_report(out, tmp_path / "page.html")
    text = Path(result["html"]).read_text(encoding="utf-8")
    assert result["survey"] == "rubin" and result["alerts"] == 89
    assert result["bands_plotted"] == list("ugrizy")
    assert list(result["t2_class"]) == list(model.class_names) and len(model.class_names) == 14
    meanings = dict(re.findall(r'<tr data-status="([^"]+)"><td>[^<]*</td><td>\d+</td><td[^>]*>([^<]*)</td>', text))
    assert set(meanings) == set(result["t2_status"]) and all(meanings.values())
    assert set(report.RUBIN_STATUS_MEANING) >= set(STATUSES) | {STATUS_UNREADABLE}
    assert "forced photometry open" in text and "<th>diaObjectId</th>" in text
    for table in re.findall(r"<h3>[^<]*</h3><table>(.*?)</table>", text, re.S):
        objects = re.findall(r"<tr><td>(\d+)</td>", table)
        assert objects and len(objects) == len(set(objects))
    axes = [ax for fig in figures for ax in fig.axes if ax.get_visible()]
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in axes)
    light_curves = [ax for ax in axes if ax.get_xlabel() == "MJD (TAI)"]
    assert light_curves and all(ax.get_ylabel() == "PSF flux (nJy)" for ax in light_curves)
    # the legend of a candidates figure names detections and forced photometry apart
    labels = {t.get_text() for fig in figures for legend in fig.legends for t in legend.get_texts()}
    assert set("ugrizy") <= labels and any(label.endswith(" forced") for label in labels)


def test_the_rubin_rows_are_flat_for_sparks_mapinarrow():
    """Spark 3.4 (Fink's earlier production pin) takes no struct column from a mapInArrow task: the Rubin output
    has none, so map_tables passes it as it is."""
    from fink_t2.alerts.layout import flat_schema
    from fink_t2.stream.rubin_stage import RUBIN_OUTPUT_SCHEMA

    assert flat_schema(RUBIN_OUTPUT_SCHEMA).equals(RUBIN_OUTPUT_SCHEMA)
    assert {"diaSourceId", "diaObjectId", "midpointMjdTai", "cband", "fpsfFlux", "t2", "t2_status", "t2_class",
            "source_file"} <= set(RUBIN_OUTPUT_SCHEMA.names)


def test_rubin_rows_never_join_ztf_rows_in_one_output(tmp_path, container):
    """A first run over only unreadable files writes its rows in ZTF's layout; Rubin files added to that input later
    are refused (one line, exit 2), not appended in another layout."""
    from fink_t2.stream.replay import NoAlertError

    night = tmp_path / "night"
    night.mkdir()
    (night / "garbage.avro").write_bytes(b"Obj\x01" + bytes(range(256)) * 4)
    out = tmp_path / "out"
    with pytest.raises(NoAlertError):
        replay(str(night), str(out), progress=False)
    single_alert_files(night, container[0][:1], container[1])
    before = sorted(p.name for p in out.glob("*.parquet"))
    with pytest.raises(ValueError, match="holds ZTF rows and the input now holds Rubin alerts"):
        replay(str(night), str(out), progress=False)
    assert sorted(p.name for p in out.glob("*.parquet")) == before


def test_the_readme_documents_every_column_of_the_rubin_output():
    from fink_t2.paths import REPO_ROOT
    from fink_t2.stream.rubin_stage import RUBIN_OUTPUT_SCHEMA

    text = (Path(REPO_ROOT) / "README.md").read_text()
    section = text.split("### Replay Rubin alerts", 1)[1].split("\n## ", 1)[0]
    table = [line.split("|")[1] for line in section.splitlines() if line.startswith("| ") and "`" in line.split("|")[1]]
    documented = {name for cell in table for name in re.findall(r"`(\w+)`", cell)}
    assert documented == set(RUBIN_OUTPUT_SCHEMA.names)


def test_a_rubin_model_for_ztf_alerts_is_refused_before_writing(tmp_path):
    """The ZTF stage builds the g/r model's sequences: a band-generic model there crashed the stream (a tensor of
    the wrong shape in every task); now one line, exit 2, nothing written."""
    from fink_t2.paths import LSST_MODEL_PATH, SAMPLE_NIGHT

    out = tmp_path / "out"
    assert_refused(replay_cli(SAMPLE_NIGHT, "--output", out, "--model", LSST_MODEL_PATH), "band-generic", "ZTF")
    assert not out.exists()
