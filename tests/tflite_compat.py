"""What a model file asks of an older TFLite runtime, and the real alerts on which the tests compare two runtimes.

TensorFlow 2.21's converter quantizes the weights of a dense layer per output channel by default, which
TFLite records as ``FULLY_CONNECTED`` version 12; the tf.lite of TensorFlow 2.15 (Fink's ZTF science image until 2026)
knows versions up to 11 and refuses such a file. The shipped file has per-tensor dense weights (version 9,
fink_t2/model/export.py).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fink_t2.core.contract import strip_contract

#: the FULLY_CONNECTED version TensorFlow 2.21's converter writes for per-tensor dynamic-range weights
PER_TENSOR_FC_VERSION = 9


def _fully_connected_codes(model, schema) -> set[int]:
    code = schema.BuiltinOperator.FULLY_CONNECTED
    return {i for i, op in enumerate(model.operatorCodes) if max(op.builtinCode, op.deprecatedBuiltinCode) == code}


def fc_versions(path) -> list[int]:
    """The FULLY_CONNECTED op versions a model file asks of its runtime."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(strip_contract(path)))
    return sorted(model.operatorCodes[i].version for i in _fully_connected_codes(model, schema))


def real_alert_probabilities(model, n_objects: int = 200) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities, status) of ``model`` on real alerts, through the cuts and preprocessing of the module.

    The 124 alerts of the sample night (Fink's science stage; few pass the cuts) and the alert views of the
    first ``n_objects`` ZTF BTS objects at 20 days (most pass), as ``fink-t2 classify`` sees them.
    """
    from pathlib import Path

    from fink_t2.alerts import iter_alert_tables
    from fink_t2.classify import classify_lightcurves
    from fink_t2.core.classifier import classify_columns
    from fink_t2.paths import SAMPLE_NIGHT, SHARED_DATA

    alerts = pd.concat([t.to_pandas() for t in iter_alert_tables(SAMPLE_NIGHT)], ignore_index=True)
    night, night_status = classify_columns(alerts.cjd, alerts.cfid, alerts.cmagpsf, alerts.cisdiffpos, alerts.roid,
                                           alerts.cdsxmatch, alerts.jdstarthist, alerts.ndethist, model)
    bts = pd.read_csv(Path(SHARED_DATA) / "ztf_bts" / "lightcurves.csv.gz")
    bts = bts[bts["objectId"].isin(bts["objectId"].drop_duplicates().iloc[:n_objects])]
    young = bts[bts["mjd"] <= bts.groupby("objectId")["mjd"].transform("min") + 20]
    views = classify_lightcurves(young.reset_index(drop=True), model=model)
    proba = np.concatenate([night, views[list(model.class_names)].to_numpy(np.float32)])
    return proba, np.concatenate([night_status, views["t2_status"].to_numpy()]).astype(str)
