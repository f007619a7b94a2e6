"""Which model file runs: one reference, resolved once on the driver, carried to every worker.

A :class:`ModelRef` holds the model's absolute path, its SHA-256 and its contract. The replay,
``fink-t2 classify`` and the UDF factories of :mod:`fink_t2.processor` receive one; it is small
and picklable, so it travels inside the UDF to the Spark workers. There a worker finds the file
(:meth:`ModelRef.local_path`: the same path, else the copy shipped with ``spark-submit --files`` /
``SparkContext.addFile``) and the runner refuses a file whose checksum differs, so every worker
runs exactly the file the driver checked.

The default is the one environment variable ``$FINK_T2_MODEL``, else the shipped model.

>>> ref = ModelRef.resolve()
>>> ref.path == DEFAULT_MODEL_PATH, ref.class_names
(True, ('SN Ia', 'SN II', 'SN Ibc', 'Other'))
>>> len(ref.sha256)
64
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field

from fink_t2.core.contract import ModelContractError, read_contract
from fink_t2.paths import DEFAULT_MODEL_PATH

#: the environment variable naming the default model file
MODEL_ENV = "FINK_T2_MODEL"


def file_sha256(path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelRef:
    """A checked t2 model file: absolute ``path``, ``sha256`` and ``contract``."""

    path: str
    sha256: str
    contract: dict = field(compare=False, hash=False)

    @property
    def class_names(self) -> tuple:
        return tuple(self.contract["class_names"])

    @classmethod
    def resolve(cls, path: str | os.PathLike | None = None) -> "ModelRef":
        """``path``, else ``$FINK_T2_MODEL``, else the shipped model; checked here.

        Raises FileNotFoundError for a missing file and ModelContractError (a ValueError) for a file
        that is not a t2 model this code can run.
        """
        name = os.path.abspath(os.fspath(path or os.environ.get(MODEL_ENV) or DEFAULT_MODEL_PATH))
        if not os.path.isfile(name):
            raise FileNotFoundError(f"model {name} does not exist or is not a file")
        return cls(name, file_sha256(name), read_contract(name))

    def local_path(self) -> str:
        """Where this process can read the file: ``path``, else the copy Spark shipped to this executor."""
        if os.path.isfile(self.path):
            return self.path
        try:
            from pyspark import SparkFiles

            shipped = SparkFiles.get(os.path.basename(self.path))
        except Exception:
            shipped = None
        if shipped and os.path.isfile(shipped):
            return shipped
        raise FileNotFoundError(f"model {self.path} is not readable here and was not shipped with --files/addFile")

    def verified_path(self) -> str:
        """:meth:`local_path`, after checking that its bytes are the ones the driver resolved."""
        local = self.local_path()
        found = file_sha256(local)
        if found != self.sha256:
            raise ModelContractError(f"model {local} has sha256 {found[:12]}…, the driver checked {self.sha256[:12]}…")
        return local
