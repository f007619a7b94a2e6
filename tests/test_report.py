"""`fink-t2 report` on the replayed sample night: a self-contained page whose numbers match the parquet."""

import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlparse

import pytest

from fink_t2.cli import main
from fink_t2.core.cuts import RAW_STATUSES, STATUSES
from fink_t2.report import load_output, write_report
from fink_t2.stream.output import SUMMARY_FILE, committed_files
from fink_t2.stream.replay import replay

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def replayed(spark, sample_night, tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "night_20211122"
    summary = replay(sample_night, str(out))
    return out, summary


@pytest.fixture(scope="module")
def page(replayed):
    out, _ = replayed
    result = write_report(out, out.parent / "site" / "night.html")
    return result, Path(result["html"]).read_text(encoding="utf-8")


def _rows(text, attr):
    return {k: int(v) for k, v in re.findall(rf'<tr data-{attr}="([^"]+)"><td>[^<]*</td><td>(\d+)</td>', text)}


def test_page_is_self_contained_with_pngs_beside_it(page):
    result, text = page
    html = Path(result["html"])
    assert not re.search(r"https?://", text)
    sources = re.findall(r'<img [^>]*src="([^"]*)"', text)
    assert sources and all(src.startswith("data:image/png;base64,") for src in sources)
    pngs = sorted(p.name for p in html.parent.glob("night_*.png"))
    assert len(pngs) == len(sources) and {"night_counts.png", "night_probabilities.png"} <= set(pngs)
    assert all((html.parent / name).read_bytes()[:4] == b"\x89PNG" for name in pngs)


def test_numbers_match_the_parquet_read_by_spark(spark, replayed, page):
    out, summary = replayed
    _, text = page
    df = spark.read.parquet(str(out))
    assert int(re.search(r'<span id="total">(\d+)</span>', text)[1]) == df.count() == 124
    status = {r["t2_status"]: r["count"] for r in df.groupBy("t2_status").count().collect()}
    assert _rows(text, "status") == status
    classes = {r["t2_class"]: r["count"] for r in df.where("t2_class IS NOT NULL").groupBy("t2_class").count().collect()}
    per_class = _rows(text, "class")
    assert {k: v for k, v in per_class.items() if v} == classes and per_class.keys() >= classes.keys()
    assert int(re.search(r'<span id="classified">(\d+)</span>', text)[1]) == sum(classes.values()) == status.get("ok", 0)
    # throughput: the summary replay() recorded beside the output
    assert json.loads((out / SUMMARY_FILE).read_text()) == summary
    assert re.search(r'<span id="alerts_per_s">([^<]*)</span>', text)[1] == str(summary["alerts_per_s"])
    # top candidates: objectIds of classified alerts
    for object_id in re.findall(r"<tr><td>(ZTF\w+)</td>", text):
        assert df.where(f"objectId = '{object_id}' AND t2_class IS NOT NULL").count() >= 1


def test_committed_files_are_what_spark_reads(spark, replayed, tmp_path):
    out, _ = replayed
    spark_files = {Path(urlparse(uri).path).name for uri in spark.read.parquet(str(out)).inputFiles()}
    assert {Path(p).name for p in committed_files(out)} == spark_files
    # an uncommitted file (a failed batch's leftover) is ignored while the sink log exists
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("_checkpoint"))
    shutil.copy(next(copy.glob("part-*.parquet")), copy / "part-99999-uncommitted.parquet")
    assert len(load_output(copy)) == 124
    shutil.rmtree(copy / "_spark_metadata")  # no log: every parquet file not under a '_' folder
    assert len(load_output(copy)) > 124


def test_cli_report(replayed, tmp_path, capsys):
    out, _ = replayed
    assert main(["report", str(out), "--html", str(tmp_path / "r.html")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["alerts"] == 124 and (tmp_path / "r.html").exists()
    assert main(["report", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_after_a_rerun_with_nothing_new_the_page_shows_the_run_that_processed_the_night(replayed, tmp_path):
    out, summary = replayed
    copy = tmp_path / "copy"
    shutil.copytree(out, copy, ignore=shutil.ignore_patterns("_checkpoint", "_report"))
    rerun = dict(summary, alerts_processed_this_run=0, wall_time_s=3.2, alerts_per_s=None)
    (copy / SUMMARY_FILE).write_text(json.dumps(rerun))
    text = Path(write_report(copy)["html"]).read_text(encoding="utf-8")
    shown = re.search(r'<span id="alerts_per_s">([^<]*)</span>', text)[1]
    assert shown == str(summary["last_processing_run"]["alerts_per_s"]) and float(shown) > 0
    assert "found nothing new to process" in text
    # a summary of an older fink-t2 (no last_processing_run) that processed the night still shows its rate
    older = {k: v for k, v in summary.items() if k != "last_processing_run"}
    (copy / SUMMARY_FILE).write_text(json.dumps(older))
    text = Path(write_report(copy)["html"]).read_text(encoding="utf-8")
    assert re.search(r'<span id="alerts_per_s">([^<]*)</span>', text)[1] == str(summary["alerts_per_s"])


def test_the_page_explains_itself_and_labels_every_axis(replayed, tmp_path, monkeypatch):
    """Each t2_status shown is explained, the candidate tables say (and hold) one row per object, and every axis
    of every figure has a label."""
    from fink_t2 import report

    out, _ = replayed
    figures = []
    original = report._png
    monkeypatch.setattr(report, "_png", lambda fig, path: figures.append(fig) or original(fig, path))
    result = write_report(out, tmp_path / "page.html")
    text = Path(result["html"]).read_text(encoding="utf-8")
    meanings = dict(re.findall(r'<tr data-status="([^"]+)"><td>[^<]*</td><td>\d+</td><td[^>]*>([^<]*)</td>', text))
    assert set(meanings) == set(result["t2_status"]) and all(meanings.values()), meanings
    assert set(report.STATUS_MEANING) >= set(STATUSES) | set(RAW_STATUSES)
    assert "one row per object" in text
    for table in re.findall(r"<h3>[^<]*</h3><table>(.*?)</table>", text, re.S):
        objects = re.findall(r"<tr><td>(ZTF\w+)</td>", table)
        assert objects and len(objects) == len(set(objects))
    axes = [ax for fig in figures for ax in fig.axes if ax.get_visible()]
    assert len(figures) >= 3 and axes
    assert all(ax.get_xlabel() and ax.get_ylabel() for ax in axes), [(ax.get_title(), ax.get_xlabel(), ax.get_ylabel())
                                                                      for ax in axes]
