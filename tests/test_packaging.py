"""pyproject.toml tells the truth: every run-time import is declared; its lower bounds are Fink's production pins
(constraints/fink-production.txt), which CI installs in one venv, and the newest releases allowed install in
another; in each, the installed pyspark's own pandas/pyarrow/numpy minimums hold, and in the Fink one
installing fink-t2 moved no pin."""

import ast
import os
import re
import sys
from importlib.metadata import distributions, metadata, packages_distributions, requires

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

from fink_t2.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "fink_t2"
#: needs the "train" extra (TensorFlow), imported only by fink-t2 train / compress
TRAIN_ONLY = PACKAGE / "model"
#: imports that are alternatives, not requirements: module → the only file allowed to import it
ALTERNATIVES = {
    "tensorflow": "fink_t2/runtime/inference.py",  # tf.lite where ai-edge-litert does not install
}
#: extras whose imports live only in these files, which fink_t2.runtime.gpu loads on demand (docs/gpu.md)
EXTRA_FILES = {"gpu": {"fink_t2/runtime/gpu_onnx.py", "fink_t2/runtime/onnx_torch.py"}}
#: Fink's production pins, which CI's third venv is built from
CONSTRAINTS = REPO_ROOT / "constraints" / "fink-production.txt"
#: set by .ci/run in the venv built from CONSTRAINTS
STACK_ENV = "FINK_T2_STACK"


def _project() -> dict:
    """The ``[project]`` table of pyproject.toml."""
    return tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]


def _name(distribution: str) -> str:
    return re.sub(r"[-_.]+", "-", distribution).lower()


def install_requires() -> dict[str, Requirement]:
    requirements = (Requirement(r) for r in _project()["dependencies"])
    return {_name(r.name): r for r in requirements}


def extra_requires(extra: str) -> set[str]:
    return {_name(Requirement(r).name) for r in _project()["optional-dependencies"][extra]}


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
            extras = [x for x, allowed in EXTRA_FILES.items() if files <= allowed and owners & extra_requires(x)]
            if not extras:
                missing[module] = sorted(files)
    assert not missing, f"imported by fink_t2 but not in pyproject.toml install_requires: {missing}"


def constraints() -> dict[str, Version]:
    """Fink's production pins (constraints/fink-production.txt): distribution name → pinned version."""
    pins = {}
    for line in CONSTRAINTS.read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            requirement = Requirement(line)
            (spec,) = requirement.specifier
            assert spec.operator == "==", f"{CONSTRAINTS.name}: {line} is not a pin"
            pins[_name(requirement.name)] = Version(spec.version)
    return pins


def _lowest(specifier: SpecifierSet) -> Version:
    return min(Version(s.version) for s in specifier if s.operator == ">=")


def test_python_requires_holds_for_the_installed_pyspark():
    ours = SpecifierSet(_project()["requires-python"])
    running = Version(".".join(map(str, sys.version_info[:2])))
    assert running in ours
    pyspark = metadata("pyspark")
    assert running in SpecifierSet(pyspark["Requires-Python"] or "")
    if Version(pyspark["Version"]).release[:2] == _lowest(install_requires()["pyspark"].specifier).release[:2]:
        # the lowest pyspark allowed (CI's Fink stack) installs on the lowest Python allowed
        assert _lowest(ours) in SpecifierSet(pyspark["Requires-Python"] or ""), f"pyspark {pyspark['Version']} needs {pyspark['Requires-Python']}"


def test_lower_bounds_are_finks_production_pins():
    """pyproject.toml claims no older release than the Fink stack that CI installs from the constraints, and allows it."""
    declared, pins = install_requires(), constraints()
    for name in ("pyspark", "pandas", "numpy", "pyarrow", "fastavro"):
        assert declared[name].specifier.contains(pins[name]), f"pyproject.toml {declared[name]} refuses Fink's {name}=={pins[name]}"
        lowest = _lowest(declared[name].specifier).release  # e.g. pandas>=2.3 for the pin 2.3.3: a prefix of it
        assert pins[name].release[: len(lowest)] == lowest, (
            f"pyproject.toml allows {name} from {'.'.join(map(str, lowest))}: CI proves {pins[name]} (constraints/{CONSTRAINTS.name})")


def test_each_pyspark_brings_its_own_pandas_and_pyarrow_minimums():
    """pyspark[sql] makes pip apply the sql extra of the pyspark it picks; the installed versions meet it and ours."""
    declared = install_requires()
    assert "sql" in declared["pyspark"].extras
    assert declared["pyspark"].specifier.contains(metadata("pyspark")["Version"])
    sql_extra = [Requirement(r) for r in requires("pyspark") or []]
    sql_extra = {_name(r.name): r for r in sql_extra if r.marker and r.marker.evaluate({"extra": "sql"})}
    for name in ("pandas", "pyarrow", "numpy"):
        installed = metadata(name)["Version"]
        assert sql_extra[name].specifier.contains(installed), f"{name} {installed}: pyspark's sql extra needs {sql_extra[name]}"
        assert declared[name].specifier.contains(installed), f"{name} {installed}: pyproject.toml says {declared[name]}"


def test_litert_is_installed_where_setup_py_promises_it():
    """ai-edge-litert comes with fink-t2 on the platforms its marker names (this one among them)."""
    litert = install_requires()["ai-edge-litert"]
    assert litert.marker is not None and litert.marker.evaluate()
    assert litert.specifier.contains(metadata("ai-edge-litert")["Version"])
    assert not litert.marker.evaluate({"sys_platform": "darwin", "platform_machine": "x86_64"})  # no wheel there


#: docs/fink.md's stack table: row label → the distribution whose pin its "Fink's production pins" column quotes
STACK_ROWS = {"Spark / pyspark": "pyspark", "pandas": "pandas", "numpy": "numpy", "pyarrow": "pyarrow",
              "fastavro": "fastavro", "TensorFlow": "tensorflow", "SuperNNova": "supernnova"}


def test_the_stack_table_quotes_the_pins():
    """docs/fink.md says which versions Fink's stack pins and pyproject.toml supports: the files' own numbers."""
    rows = {}
    for line in (REPO_ROOT / "docs" / "fink.md").read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if line.startswith("| ") and cells[0] in STACK_ROWS:
            assert cells[0] not in rows, f"docs/fink.md has two stack rows for {cells[0]}"
            rows[cells[0]] = cells
    assert set(rows) == set(STACK_ROWS), f"docs/fink.md's stack table lacks {sorted(set(STACK_ROWS) - set(rows))}"
    pins, declared = constraints(), install_requires()
    for label, name in STACK_ROWS.items():
        supported, pinned = rows[label][1], rows[label][2]
        assert re.match(rf"{re.escape(str(pins[name]))}\b", pinned), f"docs/fink.md: {label} pinned {pinned!r}, file {pins[name]}"
        if name in declared:
            lowest = ".".join(map(str, _lowest(declared[name].specifier).release))
            assert re.search(rf"(^|\D){re.escape(lowest)}(\D|$)", supported), (
                f"docs/fink.md: {label} supported {supported!r}, pyproject.toml {declared[name]}")


@pytest.mark.skipif(os.environ.get(STACK_ENV) != "fink-production",
                    reason=f"only in a venv built with -c constraints/{CONSTRAINTS.name} (${STACK_ENV}=fink-production)")
def test_installing_fink_t2_left_every_fink_pin_where_it_was():
    """`pip install -e . -c constraints/fink-production.txt` (and the Fink-stack test extras) moved no pin."""
    installed = {_name(d.metadata["Name"]): Version(d.version) for d in distributions()}
    moved = {name: str(installed[name]) for name, pin in constraints().items() if name in installed and installed[name] != pin}
    assert not moved, f"installed versions differ from Fink's pins: {moved}"
    missing = {"pyspark", "py4j", "numpy", "pandas", "pyarrow", "fastavro", "tensorflow", "supernnova"} - set(installed)
    assert not missing, f"the Fink stack lacks {sorted(missing)}"
