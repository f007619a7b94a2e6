"""What README.md and docs/*.md say about the shipped model is what the files say, whatever model is shipped.

Every number is read from the files at test time: the size of ``fink_t2/data/t2.tflite``, its quantization and
variant (``t2_metrics.json``), its class names (the contract inside the model file) and ``inference.MAX_CHUNK``.
Statements checked: README's **Shipped model** paragraph (required), any size or quantization quoted right after a
mention of ``t2.tflite``, ``--ship VARIANT`` / "Shipped model: `VARIANT`", "classes of the shipped model: ...",
and ``MAX_CHUNK`` = N / "the runtime uses chunks of N".
"""

import json
import re
from pathlib import Path

import pytest

from fink_t2.core.contract import read_contract
from fink_t2.paths import REPO_ROOT
from fink_t2.runtime.inference import MAX_CHUNK
from fink_t2.runtime.model_ref import DEFAULT_MODEL_PATH

MODEL = Path(DEFAULT_MODEL_PATH)
METRICS = json.loads((MODEL.parent / "t2_metrics.json").read_text())
DOCS = [REPO_ROOT / "README.md", *sorted((REPO_ROOT / "docs").glob("*.md"))]
#: how docs name a kind of quantization → the kind
QUANTIZATION_WORDS = {
    r"dynamic[- ]range": "dynamic-range",
    r"full[- ]int(?:eger|8)": "full-integer",
    r"float16": "float16",
    r"\bfloat32\b|\bunquantized\b": "float",
}
SIZE = re.compile(r"(\d[\d,]*(?:\.\d+)?)\s*(bytes|B|KB|kB|KiB)\b")
#: a mention of the shipped file, and what follows it up to the end of its sentence
MENTION = re.compile(r"t2\.tflite`?(.*?)(?:\.\s+[A-Z]|\.\s*$|\n\s*\n|$)", re.S)


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _kinds(text: str) -> set[str]:
    return {kind for pattern, kind in QUANTIZATION_WORDS.items() if re.search(pattern, text, re.I)}


def _size_matches(value: str, unit: str, size: int) -> bool:
    number = float(value.replace(",", ""))
    if unit in ("bytes", "B"):
        return number == size
    decimals = len(value.partition(".")[2])
    return round(size / (1024 if unit == "KiB" else 1000), decimals) == number


def _names(text: str) -> list[str]:
    return re.findall(r"`([^`]+)`", text)


@pytest.fixture(scope="module")
def shipped() -> dict:
    quantization = METRICS["model_size"]["quantization"]
    assert _kinds(quantization), f"t2_metrics.json quantization {quantization!r}: no known kind"
    return {
        "size": MODEL.stat().st_size,
        "quantization": quantization,
        "kind": _kinds(quantization),
        "variant": METRICS["model_size"]["variant"],
        "classes": read_contract(MODEL)["class_names"],
    }


def test_readme_has_a_shipped_model_paragraph_with_the_files_numbers(shipped):
    paragraphs = [" ".join(p.split()) for p in re.split(r"\n\s*\n", _text(REPO_ROOT / "README.md"))]
    lines = [p for p in paragraphs if p.startswith("**Shipped model:**")]
    assert len(lines) == 1, "README.md must have one paragraph starting with **Shipped model:**"
    line = lines[0]
    assert "`fink_t2/data/t2.tflite`" in line
    assert f"{shipped['size']:,} bytes" in line, f"size on disk is {shipped['size']:,} bytes: {line}"
    assert shipped["quantization"] in line, f"t2_metrics.json says {shipped['quantization']!r}: {line}"
    assert f"`{shipped['variant']}`" in line, f"the shipped variant is {shipped['variant']}: {line}"
    classes = line.partition("classes ")[2]
    assert _names(classes) == shipped["classes"], f"the contract's classes are {shipped['classes']}: {line}"


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_sizes_and_quantization_quoted_after_the_model_file(doc, shipped):
    for mention in MENTION.finditer(_text(doc)):
        clause = mention[1]
        for value, unit in SIZE.findall(clause)[:1]:  # the first size after the mention is the file's
            assert _size_matches(value, unit, shipped["size"]), (
                f"{doc.name}: t2.tflite is {shipped['size']:,} bytes, not {value} {unit}: ...t2.tflite{clause[:160]}")
        assert _kinds(clause) <= shipped["kind"], (
            f"{doc.name}: t2.tflite is {shipped['quantization']}, not {_kinds(clause)}: ...t2.tflite{clause[:160]}")


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: p.name)
def test_variant_and_classes_named_as_the_shipped_ones(doc, shipped):
    text = _text(doc)
    for variant in re.findall(r"--ship ([a-z0-9_]+)", text) + re.findall(r"(?<!of the )[Ss]hipped model: `([^`]+)`", text):
        assert variant == shipped["variant"], f"{doc.name}: the shipped variant is {shipped['variant']}, not {variant}"
    for listed in re.findall(r"[Cc]lasses of the shipped model: ((?:`[^`]+`[, ]*)+)", text):
        assert _names(listed) == shipped["classes"], f"{doc.name}: the contract's classes are {shipped['classes']}"


def test_chunk_size_quoted_is_the_runners():
    quoted = {}
    for doc in DOCS:
        text = _text(doc)
        for value in re.findall(r"(?<!GPU_)MAX_CHUNK`?\s*=\s*([\d,]+)", text) + re.findall(r"runtime uses chunks of ([\d,]+)", text):
            quoted.setdefault(doc.name, []).append(int(value.replace(",", "")))
    assert "deploy.md" in quoted, "docs/deploy.md no longer quotes `MAX_CHUNK` = N"
    assert all(v == MAX_CHUNK for values in quoted.values() for v in values), f"MAX_CHUNK is {MAX_CHUNK}: {quoted}"


def test_the_checks_see_the_known_statements():
    """The patterns above still find the statements they are meant to check (else they would pass vacuously)."""
    mentions = {doc.name: [m[1] for m in MENTION.finditer(_text(doc)) if SIZE.search(m[1])] for doc in DOCS}
    assert {"README.md", "quality.md"} <= {name for name, found in mentions.items() if found}
    assert re.search(r"[Cc]lasses of the shipped model: `", _text(REPO_ROOT / "README.md"))
