"""docs/fink.md's lines for fink-broker's apply_science_modules, run as written on real alerts.

The sample night is Fink's science-stage parquet (``roid`` and ``cdsxmatch`` already there); the ``c*``
columns are built with ``fink_utils.spark.utils.concat_col`` over fink-broker's ``to_expand`` list, as
``fink_broker/ztf/science.py`` does, then the documented block runs and its output must be the replay's.
CI runs this in both stacks (Spark 3.5.9 / pandas 2.3.3, Fink's, and the newest).
"""

from __future__ import annotations

import logging

import pytest
from doc_blocks import marked_python_block
from pyspark.sql import types as T

from fink_t2.paths import REPO_ROOT, SAMPLE_NIGHT
from fink_t2.stream.replay import with_t2

DOC = REPO_ROOT / "docs" / "fink.md"
MARKER = "<!-- the code block below is run by tests/test_fink_doc.py"
#: fink-broker's ``to_expand`` in ``apply_science_modules`` (fink_broker/ztf/science.py, Dec 2025)
TO_EXPAND = ["jd", "fid", "magpsf", "sigmapsf", "magnr", "sigmagnr", "isdiffpos", "distnr", "diffmaglim"]


def documented_block() -> str:
    return marked_python_block(DOC, MARKER)


@pytest.fixture(scope="module")
def fink_science_df(spark):
    """The sample night as fink-broker's science stage has it, with the c* columns of concat_col."""
    from fink_utils.spark.utils import concat_col

    df = spark.read.parquet(SAMPLE_NIGHT)
    for name in TO_EXPAND:
        df = concat_col(df, name, prefix="c")
    return df


@pytest.mark.slow
def test_the_documented_lines_classify_real_alerts_like_the_replay(spark, fink_science_df):
    block = documented_block()
    assert "T2_COLUMNS" in block and 'withColumn("t2"' in block
    scope = {"df": fink_science_df, "_LOG": logging.getLogger("fink_broker.ztf.science")}
    exec(compile(block, str(DOC), "exec"), scope)
    out = scope["df"]
    types = {f.name: f.dataType for f in out.schema.fields}
    assert types["t2"] == T.MapType(T.StringType(), T.FloatType())
    assert types["t2_status"] == T.StringType() and types["t2_class"] == T.StringType()
    got = out.select("candid", "t2", "t2_status", "t2_class").toPandas().set_index("candid").sort_index()
    want = with_t2(fink_science_df).select("candid", "t2", "t2_status", "t2_class").toPandas()
    want = want.set_index("candid").sort_index()
    assert len(got) == len(want) == 124
    assert got.t2_status.tolist() == want.t2_status.tolist()
    assert (got.t2_status == "ok").sum() >= 1 and set(got.t2_status) >= {"ok", "galactic_xmatch"}
    assert got.t2_class.fillna("").tolist() == want.t2_class.fillna("").tolist()
    assert [dict(m) for m in got.t2] == [dict(m) for m in want.t2]
    rejected = got[got.t2_status != "ok"]
    assert all(set(dict(m).values()) == {-1.0} for m in rejected.t2)
