"""docs/plasticc.md is the rendering of docs/plasticc.json, whose Rubin rows are the shipped file's metrics."""

import json

from fink_t2.model.plasticc_report_text import render
from fink_t2.paths import MODEL_DIR, REPO_ROOT

DATA = json.loads((REPO_ROOT / "docs" / "plasticc.json").read_text())


def test_page_is_the_rendering_of_its_json():
    assert (REPO_ROOT / "docs" / "plasticc.md").read_text() == render(DATA)


def test_rubin_rows_are_the_shipped_files():
    metrics = json.loads((MODEL_DIR / "t2_lsst_metrics.json").read_text())
    assert DATA["lsst_model"]["model_size"] == metrics["model_size"]
    assert DATA["lsst_model"]["guard"] == metrics["guard"] and DATA["lsst_model"]["command"] == metrics["command"]
    assert DATA["benchmark"]["bytes"] == (MODEL_DIR / "t2_lsst.tflite").stat().st_size
    assert DATA["runs"]["rubin"]["summary"] == metrics["cross_validation"]["summary"]
