"""One model source: the model is resolved when first needed (ModelRef), never when a module is imported, so
an explicit ``--model`` works whatever ``$FINK_T2_MODEL`` says, and the Fink UDFs follow the variable as it is
when they are applied."""

import json
import os
import subprocess
import sys

import pytest
from alert_files import AVRO_NIGHT
from replay_helpers import replay_cli

from fink_t2.paths import DEFAULT_MODEL_PATH, SAMPLE_NIGHT
from fink_t2.runtime.model_ref import MODEL_ENV, ModelRef
from fink_t2.stream.output import RUN_MARKER


def _python(code: str, **env) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, **env})


def test_importing_the_fink_modules_reads_no_model(tmp_path):
    """With $FINK_T2_MODEL naming a missing file, the processor and the replay import; the UDF fails only when
    applied, naming the file."""
    missing = tmp_path / "missing.tflite"
    proc = _python("import fink_t2.processor as p, fink_t2.stream.replay, fink_t2.cli\n"  # resolving would raise
                   "try:\n    p.t2(*p.T2_COLUMNS)\nexcept FileNotFoundError as err:\n    print('refused:', err)\n",
                   **{MODEL_ENV: str(missing)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.startswith("refused: model ") and str(missing) in proc.stdout


def test_the_default_model_is_resolved_once_per_file(tmp_path, monkeypatch):
    monkeypatch.delenv(MODEL_ENV, raising=False)
    shipped = ModelRef.default()
    assert shipped.path == DEFAULT_MODEL_PATH and ModelRef.default() is shipped
    copy = tmp_path / "copy.tflite"
    copy.write_bytes(open(DEFAULT_MODEL_PATH, "rb").read())
    monkeypatch.setenv(MODEL_ENV, str(copy))
    chosen = ModelRef.default()
    assert chosen.path == str(copy) and chosen.sha256 == shipped.sha256 and ModelRef.default() is chosen


def test_the_fink_udfs_run_the_model_named_when_they_are_applied(spark, tmp_path, monkeypatch):
    """$FINK_T2_MODEL set after the import is obeyed by t2 and t2_class (here a real model whose contract
    renames its classes: the output map uses those names)."""
    from fink_t2.alerts.binaryfile import load_alerts
    from fink_t2.core.contract import attach_contract, read_contract, strip_contract
    from fink_t2.processor import T2_COLUMNS, t2, t2_class

    contract = read_contract(DEFAULT_MODEL_PATH)
    renamed = [f"renamed {c}" for c in contract["class_names"]]
    model = tmp_path / "renamed.tflite"
    model.write_bytes(attach_contract(strip_contract(DEFAULT_MODEL_PATH), {**contract, "class_names": renamed}))
    monkeypatch.setenv(MODEL_ENV, str(model))
    df = load_alerts(spark, SAMPLE_NIGHT)
    rows = df.withColumn("t2", t2(*T2_COLUMNS)).withColumn("t2_class", t2_class(*T2_COLUMNS)).select(
        "t2", "t2_class").collect()
    assert len(rows) == 124 and {tuple(sorted(r.t2)) for r in rows} == {tuple(sorted(renamed))}
    assert {r.t2_class for r in rows} - {None} <= set(renamed) and any(r.t2_class for r in rows)
    assert t2.returnType.simpleString() == "map<string,float>"  # the UDF's own attributes are reachable


@pytest.mark.slow
def test_replay_with_a_good_model_ignores_a_missing_default(tmp_path):
    """The case of issue 18: ``fink-t2 replay --model GOOD`` with $FINK_T2_MODEL naming a missing file."""
    night = tmp_path / "night"
    night.mkdir()
    for path in sorted(AVRO_NIGHT.glob("*.avro"))[:3]:
        (night / path.name).write_bytes(path.read_bytes())
    out = tmp_path / "out"
    proc = replay_cli(night, "--output", out, "--model", DEFAULT_MODEL_PATH, timeout=600,
                      env={**os.environ, MODEL_ENV: str(tmp_path / "missing.tflite")})
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout)["alerts_in_output"] == 3
    assert json.loads((out / RUN_MARKER).read_text())["model"] == DEFAULT_MODEL_PATH
