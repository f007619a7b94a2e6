"""The replay's stages, functions over Arrow tables, composed in one ``mapInArrow`` task.

    binaryFile rows ──▶ decode ──▶ raw filter ──▶ t2 ──▶ output rows
                       (fink_t2.alerts.binaryfile.decode_inputs: Fink's layout)
                                   (fink_t2.alerts.science_stage.raw_filter: raw alerts' status)
                                                 (t2_stage: the cuts and the model, fink_t2.core.classifier)

Each input file's alerts go through the three stages inside the task that read it: the alerts cross
between the JVM and Python once, as the task's output (before, a pandas UDF after the decoder made it
twice). The t2 stage reads the ``c*`` columns straight from their Arrow lists (flat values and offsets,
:func:`fink_t2.core.classifier.classify_ragged`, the core the pandas UDFs of :mod:`fink_t2.processor` use
too), so what the replay writes is what those UDFs give for the same alerts (``tests/test_replay.py``).

Output rows (:data:`OUTPUT_SCHEMA`): Fink's layout, ``source_file``, ``ingest_error``, then ``t2`` (class →
calibrated probability, every value ``REJECTED`` for an alert not classified), ``t2_status`` (the raw filter's
status first, ``unreadable_file`` for a row standing for an unreadable input, else t2's) and ``t2_class``.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyspark.sql import DataFrame, DataFrameReader
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.streaming import DataStreamReader
from pyspark.sql.types import StringType, StructField, StructType

from fink_t2.alerts.binaryfile import binary_source, decode_inputs, map_tables
from fink_t2.alerts.layout import DECODED_SCHEMA
from fink_t2.alerts.science_stage import RAW_FILTER, candidate_field, raw_filter
from fink_t2.core.classifier import classify_ragged
from fink_t2.core.cuts import REJECTED, STATUS_UNREADABLE
from fink_t2.processor import T2_MAP_TYPE
from fink_t2.runtime.gpu import model_for_task
from fink_t2.runtime.model_ref import ModelRef

#: what t2 adds to a row (Arrow)
T2_FIELDS = (pa.field("t2", pa.map_(pa.string(), pa.float32())), pa.field("t2_status", pa.string()),
             pa.field("t2_class", pa.string()))
#: the rows the replay writes
OUTPUT_SCHEMA = pa.schema(list(DECODED_SCHEMA) + list(T2_FIELDS))
#: the same for Spark (t2's map as the pandas UDFs declare it)
OUTPUT_SPARK_SCHEMA = StructType(from_arrow_schema(DECODED_SCHEMA).fields + [
    StructField("t2", T2_MAP_TYPE), StructField("t2_status", StringType()), StructField("t2_class", StringType())])


def _ragged(column, dtype) -> tuple[np.ndarray, np.ndarray]:
    """An Arrow list column → (flat values, offsets); a null list is empty, a null value NaN (numbers) or None."""
    column = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    lengths = pc.fill_null(pc.list_value_length(column), 0).to_numpy(zero_copy_only=False)
    values = column.flatten()
    if dtype is not object:
        values = values.cast(pa.float64())
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    return values.to_numpy(zero_copy_only=False), offsets


def _numbers(array) -> np.ndarray:
    return array.cast(pa.float64()).to_numpy(zero_copy_only=False)


def t2_stage(table: pa.Table, model) -> pa.Table:
    """Alerts in Fink's layout (a ``raw_filter`` column optional) → the same rows with ``t2``, ``t2_status``,
    ``t2_class`` (:data:`OUTPUT_SCHEMA`). Rows the raw filter rejected, and rows standing for an unreadable input,
    are not classified: their status is the raw filter's, or ``unreadable_file``."""
    n = table.num_rows
    unreadable = unreadable_rows(table)
    filtered = RAW_FILTER in table.column_names
    raw = table.column(RAW_FILTER).to_numpy(zero_copy_only=False) if filtered else np.full(n, None, dtype=object)
    rejected = _mask(pc.is_valid(table.column(RAW_FILTER))) if filtered else np.zeros(n, dtype=bool)
    todo = np.flatnonzero(~unreadable & ~rejected)
    sub = table.take(pa.array(todo, pa.int64()))
    result = classify_ragged(_ragged(sub.column("cjd"), float), _ragged(sub.column("cfid"), float),
                             _ragged(sub.column("cmagpsf"), float), _ragged(sub.column("cisdiffpos"), object),
                             _numbers(sub.column("roid")), sub.column("cdsxmatch").to_numpy(zero_copy_only=False),
                             _numbers(candidate_field(sub, "jdstarthist")), _numbers(candidate_field(sub, "ndethist")),
                             model)
    if filtered:
        table = table.drop_columns([RAW_FILTER])
    return append_t2_columns(table, todo, result, model.class_names, np.where(unreadable, STATUS_UNREADABLE, raw))


def append_t2_columns(table: pa.Table, todo: np.ndarray, result, class_names, status: np.ndarray) -> pa.Table:
    """``table`` with :data:`T2_FIELDS` appended: ``result`` (the :class:`~fink_t2.core.classifier.Classification`
    of the rows ``todo``) in its rows; every other row keeps ``status``, ``REJECTED`` probabilities, no class."""
    n, names = table.num_rows, list(class_names)
    proba = np.full((n, len(names)), REJECTED, dtype=np.float32)
    proba[todo] = result.proba
    status = np.array(status, dtype=object)
    status[todo] = result.status
    label = np.full(n, None, dtype=object)
    label[todo] = result.label
    t2 = pa.MapArray.from_arrays(pa.array(np.arange(0, (n + 1) * len(names), len(names)), pa.int32()),
                                 pa.array(names * n, pa.string()), pa.array(proba.ravel(), pa.float32()))
    for field, values in zip(T2_FIELDS, (t2, pa.array(status, pa.string()), pa.array(label, pa.string()))):
        table = table.append_column(field, values)
    return table


def unreadable_rows(table: pa.Table) -> np.ndarray:
    """Which rows stand for an input that could not be read (``ingest_error`` set): not to classify."""
    return _mask(pc.is_valid(table.column("ingest_error")))


def _mask(values) -> np.ndarray:
    values = values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values
    return values.to_numpy(zero_copy_only=False).astype(bool)


def replay_task(ref: ModelRef):
    """The tables of the replay's task: binaryFile batches → :data:`OUTPUT_SCHEMA` tables, each input file
    decoded, raw-filtered and classified by ``ref``'s model (loaded once per Python worker)."""
    def task(batches):
        for batch in batches:
            for table in decode_inputs(batch):
                yield t2_stage(raw_filter(table), model_for_task(ref))
    return task


def classified_alerts(reader: DataFrameReader | DataStreamReader, path: str, fmt: str, ref: ModelRef) -> DataFrame:
    """The alerts at ``path`` (:func:`fink_t2.alerts.binaryfile.binary_source`) decoded, raw-filtered and classified
    in one task (:func:`fink_t2.alerts.binaryfile.map_tables`): what the replay writes (:data:`OUTPUT_SPARK_SCHEMA`)."""
    return map_tables(binary_source(reader, path, fmt), replay_task(ref), OUTPUT_SCHEMA)
