"""setup.py tells the truth: every run-time import is declared, and python_requires and the pandas/pyarrow
minimums hold for the pyspark installed here (CI installs the newest one allowed, in a fresh venv)."""

import ast
import re
import sys
from importlib.metadata import metadata, packages_distributions, requires
from pathlib import Path

from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from fink_t2.samples import REPO_ROOT

PACKAGE = REPO_ROOT / "fink_t2"
#: needs the "train" extra (TensorFlow), imported only by fink-t2 train / compress
TRAIN_ONLY = PACKAGE / "model"
#: imports that are alternatives, not requirements: module → the only file allowed to import it
ALTERNATIVES = {
    "tensorflow": "fink_t2/inference.py",  # tf.lite where ai-edge-litert does not install
    "isal": "fink_t2/alerts/tarball.py",  # ISA-L's faster gzip for nightly tarballs, else the standard library's
}


def _setup_keywords() -> dict:
    call = next(node for node in ast.walk(ast.parse((REPO_ROOT / "setup.py").read_text()))
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup")
    return {k.arg: k.value for k in call.keywords}


def _name(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def install_requires() -> dict[str, Requirement]:
    requirements = (Requirement(ast.literal_eval(e)) for e in _setup_keywords()["install_requires"].elts)
    return {_name(r.name): r for r in requirements}


def runtime_imports() -> dict[str, set[str]]:
    """Top-level module → fink_t2 files importing it (anywhere in the file), outside fink_t2/model."""
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        if TRAIN_ONLY in path.parents:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(REPO_ROOT)))
    return found


def test_every_runtime_import_is_declared():
    declared = install_requires()
    distributions = packages_distributions()
    imports = runtime_imports()
    assert {"pyspark", "matplotlib", "ai_edge_litert", "fastavro"} <= set(imports)  # the scan sees them
    missing = {}
    for module, files in sorted(imports.items()):
        if module in sys.stdlib_module_names or module in ("fink_t2", "__future__"):
            continue
        if module in ALTERNATIVES and files == {ALTERNATIVES[module]}:
            continue
        owners = {_name(d) for d in distributions.get(module, [module])}
        if not owners & set(declared):
            missing[module] = sorted(files)
    assert not missing, f"imported by fink_t2 but not in setup.py install_requires: {missing}"


def test_python_requires_holds_for_the_installed_pyspark():
    ours = SpecifierSet(ast.literal_eval(_setup_keywords()["python_requires"]))
    lowest = min(Version(s.version) for s in ours if s.operator == ">=")
    pyspark = SpecifierSet(metadata("pyspark")["Requires-Python"] or "")
    assert lowest in pyspark, f"python_requires {ours} allows {lowest}, pyspark {metadata('pyspark')['Version']} needs {pyspark}"
    assert Version(".".join(map(str, sys.version_info[:2]))) in ours


def test_pandas_and_pyarrow_minimums_are_at_least_pysparks_sql_extra():
    declared = install_requires()
    assert declared["pyspark"].specifier.contains(metadata("pyspark")["Version"])
    sql_extra = [Requirement(r) for r in requires("pyspark") or []]
    sql_extra = {_name(r.name): r for r in sql_extra if r.marker and r.marker.evaluate({"extra": "sql"})}
    for name in ("pandas", "pyarrow"):
        theirs = min(Version(s.version) for s in sql_extra[name].specifier if s.operator == ">=")
        ours = min(Version(s.version) for s in declared[name].specifier if s.operator == ">=")
        assert ours >= theirs, f"setup.py allows {name} {declared[name].specifier}, pyspark's sql extra needs {theirs}+"
