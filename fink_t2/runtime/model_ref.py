"""Which model file runs: one reference, resolved once on the driver, carried to every worker.

A :class:`ModelRef` holds the model's absolute path, its SHA-256 and its contract. The replay,
``fink-t2 classify`` and the UDF factories of :mod:`fink_t2.processor` receive one; it is small
and picklable, so it travels inside the UDF to the Spark workers. There a worker finds the file
(:meth:`ModelRef.local_path`: the same path, else the copy shipped with ``spark-submit --files`` /
``SparkContext.addFile``) and the runner refuses a file whose checksum differs, so every worker
runs exactly the file the driver checked.

The default is the one environment variable ``$FINK_T2_MODEL``, else the shipped model. It is read
when a model is first needed, never when a module is imported: :meth:`ModelRef.default` resolves it
once per file name and process, so a command given an explicit model (``--model``) never touches
``$FINK_T2_MODEL``, and a process that sets the variable before its first UDF call is obeyed.

>>> ref = ModelRef.resolve()
>>> ref.path == DEFAULT_MODEL_PATH, ref.class_names
(True, ('SN Ia', 'SN II', 'SN Ibc', 'Other'))
>>> len(ref.sha256)
64
>>> ModelRef.default() is ModelRef.default() and ModelRef.default() == ref
True
"""

from __future__ import annotations

import functools
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

    @classmethod
    def default(cls) -> "ModelRef":
        """The default model (``$FINK_T2_MODEL``, else the shipped one), resolved at the first call for that
        file name and reused after: what the Fink UDFs run when given no reference."""
        return _resolved(os.path.abspath(os.environ.get(MODEL_ENV) or DEFAULT_MODEL_PATH))

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


@functools.lru_cache(maxsize=None)
def _resolved(path: str) -> ModelRef:
    return ModelRef.resolve(path)
