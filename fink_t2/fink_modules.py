"""Real Fink science modules (fink-science, from PyPI) applied beside t2 in one DataFrame.

Each entry says which fink-science UDF to call and with which columns of the
Fink layout produced by :mod:`fink_t2.alerts.binaryfile`, exactly as Fink's science stage
does. fink-science declares no dependencies: each module needs its own
(``pip install 'fink-t2[fink]'`` brings those of ``nalerthist`` and ``roid``).
SuperNNova needs ``supernnova`` >= 3.0.51 under pandas 2 (installed ``--no-deps``, as Fink does),
``torch`` and scikit-learn: it runs in Fink's own stack, the venv that ``.ci/run`` builds from
``constraints/fink-production.txt`` (docs/fink.md, which says why 3.0.51 and not Fink's 3.0.21), where
``scripts/bench_modules.py`` times it beside t2. The UDFs are called as fink-science publishes them:
nothing here adapts their inputs or outputs.

>>> sorted(FINK_MODULES)
['nalerthist', 'roid', 'snn_snia_vs_nonia']
>>> FINK_MODULES["roid"].output
'roid_fink'
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F


@dataclass(frozen=True)
class FinkModule:
    """One fink-science UDF: where it lives, its input columns, the column it writes."""

    module: str
    function: str
    columns: tuple
    output: str
    literals: tuple = ()

    def udf(self):
        """Import the UDF (raises ImportError naming what to install)."""
        try:
            return getattr(importlib.import_module(self.module), self.function)
        except ImportError as err:
            raise ImportError(f"{self.module}.{self.function} is not usable here ({err}); see fink_t2.fink_modules") from err

    def apply(self, df: DataFrame) -> DataFrame:
        args = [F.col(c) for c in self.columns] + [F.lit(v) for v in self.literals]
        return df.withColumn(self.output, self.udf()(*args))


FINK_MODULES = {
    "nalerthist": FinkModule("fink_science.ztf.nalerthist.processor", "nalerthist", ("cmagpsf",), "nalerthist"),
    # written beside the input's own roid (which t2's cuts read), so neither disturbs the other
    "roid": FinkModule(
        "fink_science.ztf.asteroids.processor",
        "roid_catcher",
        ("cjd", "cmagpsf", "candidate.ndethist", "candidate.sgscore1", "candidate.ssdistnr", "candidate.distpsnr1"),
        "roid_fink",
    ),
    "snn_snia_vs_nonia": FinkModule(
        "fink_science.ztf.snn.processor",
        "snn_ia",
        ("candid", "cjd", "cfid", "cmagpsf", "csigmapsf", "roid", "cdsxmatch", "candidate.jdstarthist"),
        "snn_snia_vs_nonia",
        literals=("snn_snia_vs_nonia",),
    ),
}


def add_fink_modules(df: DataFrame, names) -> DataFrame:
    """Apply the named fink-science modules to a Fink-layout DataFrame, in order."""
    unknown = [n for n in names if n not in FINK_MODULES]
    if unknown:
        raise ValueError(f"unknown Fink module(s) {unknown}; known: {sorted(FINK_MODULES)}")
    for name in names:
        df = FINK_MODULES[name].apply(df)
    return df
