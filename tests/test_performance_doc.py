"""docs/performance.md and docs/gpu.md are what their scripts write from the benchmark files, figure for figure.

A hand edit of either page, or a benchmark file rerun without regenerating the page, fails here: rerun
``python scripts/performance_report.py`` (and ``python scripts/gpu_report.py`` after a GPU check).
"""

import copy
import json
from pathlib import Path

import pytest
from script_modules import load_script

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"



@pytest.fixture(scope="module")
def report():
    return load_script("performance_report")


@pytest.fixture(scope="module")
def files(report):
    return report.load()


def _page(report, files):
    return report.markdown(files, report.shipped_sha256(), report.fink_install())


def test_performance_page_is_the_reports_output(report, files):
    assert {"bench_modules_fink_stack.json", "night_scale.json"} <= set(files)
    assert (DOCS / "performance.md").read_text(encoding="utf-8") == _page(report, files), (
        "docs/performance.md differs from what its files give: run python scripts/performance_report.py")


def test_a_changed_figure_changes_the_page(report, files):
    """The published figures are rendered from the files, not typed: change one in a file, the page changes."""
    changed = copy.deepcopy(files)
    name = "bench_modules_fink_stack.json"
    big = sorted(changed[name]["all_pass"], key=int)[-1]
    published = changed[name]["all_pass"][big]["t2"]["alerts_per_second_per_core"]
    changed[name]["all_pass"][big]["t2"]["alerts_per_second_per_core"] = 1234.0
    before, after = _page(report, files), _page(report, changed)
    assert f"{published:,.0f}" in before and "1,234" in after and before != after


def test_the_rerun_commands_are_the_ones_ci_and_the_scripts_use(report, files):
    page = (DOCS / "performance.md").read_text(encoding="utf-8")
    for line in report.fink_install():  # .ci/run's own lines for Fink's production stack
        assert line in page
    for name, command in report.RERUN.items():
        if name in files and name.startswith("bench_modules"):
            assert command in page and files[name]["command"] == command, name


def test_night_targets_from_either_form_of_the_cpu_field():
    """night_scale.json gives CPU ms per alert in all (older runs) or per process (newer ones): same verdicts."""
    sections = load_script("perf_sections")
    data = json.loads((DOCS / "night_scale.json").read_text())
    per_process = copy.deepcopy(data)
    for run in per_process["runs"]:
        run["cpu_ms_per_alert"] = {k[len("cpu_s_"):]: 1000 * v / run["alerts"] for k, v in run.items() if k.startswith("cpu_s_")}
    targets = [line for line in sections.night(data) if line.startswith("- ")]
    assert targets and targets == [line for line in sections.night(per_process) if line.startswith("- ")]
    goal = sections.NIGHT_TARGETS
    local2 = [r for r in data["runs"] if r["master"] == goal["master"]]
    # the runs of the target's size, else (none measured at that size) every run of the target's master
    judged = [r for r in local2 if r["alerts"] == goal["alerts"]] or local2
    assert len(targets) == len(judged)
    for run, line in zip(judged, targets):
        met = run["alerts_per_s"] >= sections.NIGHT_TARGETS["alerts_per_s"]
        assert ("alerts/s (met)" in line) == met, line


def test_gpu_page_is_the_reports_output():
    gpu = load_script("gpu_report")
    data = json.loads((DOCS / "gpu_check.json").read_text())
    shipped = load_script("performance_report").shipped_sha256()
    assert (DOCS / "gpu.md").read_text(encoding="utf-8") == gpu.markdown(data, shipped), (
        "docs/gpu.md differs from what gpu_check.json gives: run python scripts/gpu_report.py")
    best = max(data["model_alone_alerts_per_s"]["torch-cuda"].values())
    assert f"{best:,.0f}" in gpu.markdown(data, shipped)
    # a run of another file says so; a run of the shipped file does not
    assert ("not the one shipped now" in gpu.markdown(data, shipped)) == (data["model_sha256"] != shipped)
    assert "not the one shipped now" not in gpu.markdown(data, data["model_sha256"])


def test_conditions_record_load_and_threads(monkeypatch):
    conditions = load_script("bench_conditions")
    for name in conditions.THREAD_VARIABLES:  # restored as they were after the test
        monkeypatch.setenv(name, "7")
    conditions.pin_threads(0)  # 0: each library's default, untouched
    assert conditions.os.environ["OMP_NUM_THREADS"] == "7"
    conditions.pin_threads(1)
    now = conditions.conditions()
    assert len(now["load_average_1_5_15"]) == 3 and now["cores"] >= 1
    assert set(now["threads"]["environment"]) == set(conditions.THREAD_VARIABLES)
    assert all(v == "1" for v in now["threads"]["environment"].values())


@pytest.mark.parametrize("script", ["bench_modules", "bench_variants", "compression_table", "gpu_check"])
def test_every_benchmark_script_records_its_conditions(script):
    source = (ROOT / "scripts" / f"{script}.py").read_text()
    assert "from bench_conditions import" in source and "conditions(" in source, script
