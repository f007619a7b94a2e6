"""The replay's stages for Rubin alerts, composed in one ``mapInArrow`` task as for ZTF (:mod:`fink_t2.stream.stages`).

    binaryFile rows ──▶ decode ──▶ t2 ──▶ output rows
                       (fink_t2.alerts.rubin.decode_rubin_bytes: the Rubin alert table)
                                   (rubin_t2_stage: the Rubin cuts and the model, fink_t2.core.rubin_classifier)

Each input file (``lsst.v10_0`` single-alert Avro, Avro container such as Fink's Rubin output, Fink Rubin
parquet, ELAsTiCC parquet) is decoded block by block (row group by row group) inside the task that read it,
and classified by :func:`fink_t2.core.rubin_classifier.classify_rubin_columns`, the core the Fink Rubin UDF
(:func:`fink_t2.rubin_processor.t2_rubin`) runs: what the replay writes is what that UDF gives for the same
alerts (``tests/test_rubin_replay.py``). There is no raw filter: Rubin alerts reach t2 as Fink's Rubin stage has
them, and the Rubin cuts (:mod:`fink_t2.core.rubin_cuts`) are the only ones.

Output rows (:data:`RUBIN_OUTPUT_SCHEMA`, every column flat): the Rubin alert table
(:data:`fink_t2.alerts.rubin_table.RUBIN_ALERT_SCHEMA`: ``diaObjectId``, ``diaSourceId``, the ``diaSource``
values, ``diaObject_*``, ``ssSource_*``, ``is_sso``, the detections as ``c*`` arrays (``prvDiaSources`` then
``diaSource``: ``cmidpointMjdTai`` MJD TAI, ``cpsfFlux`` and ``cpsfFluxErr`` nJy, ``cband`` u..y) and the forced
photometry as ``f*`` arrays), ``source_file``, ``ingest_error``, then as for ZTF ``t2`` (class → calibrated
probability, the model contract's 14 PLAsTiCC classes; every value ``REJECTED`` for an alert not classified),
``t2_status`` (``ok``, the Rubin cut that failed, or ``unreadable_file`` for a row standing for an unreadable
input or a damaged part of one) and ``t2_class`` (the decision, null when not classified).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyspark.sql import DataFrame, DataFrameReader
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.streaming import DataStreamReader

from fink_t2.alerts.binaryfile import binary_source, map_tables
from fink_t2.alerts.rubin import RUBIN_DECODED_SCHEMA, decode_rubin_bytes
from fink_t2.alerts.rubin_table import CLASSIFIER_INPUTS
from fink_t2.core.cuts import STATUS_UNREADABLE
from fink_t2.core.rubin_classifier import classify_rubin_columns
from fink_t2.runtime.gpu import model_for_task
from fink_t2.runtime.model_ref import ModelRef
from fink_t2.stream.stages import T2_FIELDS, append_t2_columns, unreadable_rows

#: the rows the replay writes for Rubin alerts
RUBIN_OUTPUT_SCHEMA = pa.schema(list(RUBIN_DECODED_SCHEMA) + list(T2_FIELDS))
#: the same for Spark
RUBIN_OUTPUT_SPARK_SCHEMA = from_arrow_schema(RUBIN_OUTPUT_SCHEMA)


def rubin_t2_stage(table: pa.Table, model) -> pa.Table:
    """Rubin alerts (:data:`~fink_t2.alerts.rubin.RUBIN_DECODED_SCHEMA`) → the same rows with ``t2``, ``t2_status``,
    ``t2_class`` (:data:`RUBIN_OUTPUT_SCHEMA`). A row standing for an unreadable input is not classified."""
    todo = np.flatnonzero(~unreadable_rows(table))
    sub = table.take(pa.array(todo, pa.int64()))
    # the values as the pandas UDF gets them (Arrow → pandas): same input, same result
    result = classify_rubin_columns(*(sub.column(name).to_pandas() for name in CLASSIFIER_INPUTS), model)
    return append_t2_columns(table, todo, result, model.class_names,
                             np.full(table.num_rows, STATUS_UNREADABLE, dtype=object))


def rubin_replay_task(ref: ModelRef):
    """The tables of the Rubin replay's task: binaryFile batches (path, content) → :data:`RUBIN_OUTPUT_SCHEMA`
    tables, each file decoded (at most 5,000 alerts a table) and classified by ``ref``'s model (loaded once per
    Python worker)."""
    def task(batches):
        for batch in batches:
            paths, contents = batch.column("path").to_pylist(), batch.column("content")
            for i, path in enumerate(paths):
                for table in decode_rubin_bytes(path, contents[i].as_buffer()):  # no copy of the bytes
                    yield rubin_t2_stage(table, model_for_task(ref))
    return task


def classified_rubin_alerts(reader: DataFrameReader | DataStreamReader, path: str, fmt: str, ref: ModelRef) -> DataFrame:
    """The Rubin alerts at ``path`` (:func:`fink_t2.alerts.binaryfile.binary_source`) decoded and classified in one
    task (:func:`fink_t2.alerts.binaryfile.map_tables`): what the replay writes (:data:`RUBIN_OUTPUT_SPARK_SCHEMA`)."""
    return map_tables(binary_source(reader, path, fmt), rubin_replay_task(ref), RUBIN_OUTPUT_SCHEMA)
