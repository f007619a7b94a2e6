"""The contract a t2 model file carries: class names, input shape, channels, preprocessing.

A ``.tflite`` FlatBuffer ignores bytes after its end, and TFLite's own
"associated files" are a zip archive appended that way. fink-t2 does the
same: ``t2_contract.json`` lives in a zip appended to the model, readable with
:mod:`zipfile` and invisible to the interpreter. The runtime refuses a model
whose contract is missing or does not match this code's preprocessing.

>>> from fink_t2.runtime.model_ref import DEFAULT_MODEL_PATH
>>> contract = read_contract(DEFAULT_MODEL_PATH)
>>> contract["preprocessing_version"] == PREPROCESSING_VERSION
True
>>> contract["bands"]
['g', 'r']
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

from fink_t2.core.calibration import check_calibration
from fink_t2.core.sequences import BANDS, CHANNELS, PREPROCESSING_VERSION, SEQUENCE_LENGTH, WINDOW_DAYS
from fink_t2.core.spec import SequenceSpec, spec_from_contract

CONTRACT_NAME = "t2_contract.json"
CONTRACT_FORMAT = 2
#: band-generic flux models (fink_t2.core.spec): bands, unit and zero point are data of the contract
FLUX_FORMAT = 3


class ModelContractError(ValueError):
    """The file is not a t2 model this version of fink-t2 can run."""


def _expected() -> dict:
    """What this code's preprocessing produces: every model it runs must declare exactly this."""
    return {
        "format": CONTRACT_FORMAT,
        "sequence_length": SEQUENCE_LENGTH,
        "channels": list(CHANNELS),
        "bands": [name for name, _ in BANDS],
        "window_days": WINDOW_DAYS,
        "preprocessing_version": PREPROCESSING_VERSION,
    }


def make_contract(class_names, spec: SequenceSpec | None = None, **extra) -> dict:
    """Contract of a model trained with this code's preprocessing: the ZTF layout (format 2), or a
    band-generic :class:`fink_t2.core.spec.SequenceSpec` (format 3: bands, unit, zero point, layout)."""
    fields = _expected() if spec is None else spec.contract_fields()
    return {**fields, "class_names": list(class_names), **extra}


def attach_contract(model_bytes: bytes, contract: dict) -> bytes:
    """Return the model bytes with the contract appended as a zip archive."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(CONTRACT_NAME, json.dumps(contract, indent=1, sort_keys=True))
    return bytes(model_bytes) + buffer.getvalue()


def strip_contract(path) -> bytes:
    """The model bytes of a t2 file without its appended contract."""
    data = Path(path).read_bytes()
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return data[: min(info.header_offset for info in archive.infolist())]
    except zipfile.BadZipFile:
        return data


def read_contract(path) -> dict:
    """Read and validate the contract of a model file; raise ModelContractError if unusable."""
    try:
        with zipfile.ZipFile(path) as archive:
            contract = json.loads(archive.read(CONTRACT_NAME))
    except FileNotFoundError:
        raise
    except (zipfile.BadZipFile, KeyError, ValueError) as err:
        raise ModelContractError(f"{path}: no t2 contract in this file, not a fink-t2 model ({err})") from None
    check_contract(contract, path)
    return contract


def check_contract(contract: dict, path="model") -> None:
    """Refuse a contract this code does not understand (format 2: the ZTF layout exactly; format 3: a
    consistent :class:`fink_t2.core.spec.SequenceSpec`)."""
    if contract.get("format") == FLUX_FORMAT:
        try:
            spec_from_contract(contract)
        except (TypeError, ValueError) as err:
            raise ModelContractError(f"{path}: {err}") from None
    else:
        for key, value in _expected().items():
            if contract.get(key) != value:
                raise ModelContractError(
                    f"{path}: model {key} is {contract.get(key)!r}, this fink-t2 needs {value!r}"
                )
    names = contract.get("class_names")
    if not names or not all(isinstance(n, str) and n for n in names) or len(set(names)) != len(names):
        raise ModelContractError(f"{path}: class_names must be distinct non-empty strings, got {names!r}")
    try:
        check_calibration(contract.get("calibration"), len(names), path)
    except ValueError as err:
        raise ModelContractError(str(err)) from None


def input_spec(contract: dict):
    """The input a checked contract declares: a :class:`fink_t2.core.spec.SequenceSpec` (format 3), or for the
    ZTF file (format 2) the g/r µJy spec its contract implies (``fink_t2.core.spec.ZTF_SPEC``).

    >>> from fink_t2.runtime.model_ref import DEFAULT_MODEL_PATH
    >>> input_spec(read_contract(DEFAULT_MODEL_PATH))["flux_unit"]
    'uJy'
    """
    return spec_from_contract(contract)


def check_io(path, contract: dict, input_shape, n_outputs: int) -> None:
    """Refuse a model whose input shape or number of outputs disagrees with its own contract.

    ``input_shape`` is the runtime's (batch first; the batch size itself is not checked).
    """
    if tuple(int(d) for d in input_shape[1:]) != (contract["sequence_length"], len(contract["channels"])):
        raise ModelContractError(f"{path}: input shape {list(input_shape)} does not match its contract "
                                 f"({contract['sequence_length']} nodes × {len(contract['channels'])} channels)")
    if n_outputs != len(contract["class_names"]):
        raise ModelContractError(f"{path}: {n_outputs} outputs but {len(contract['class_names'])} class names")
