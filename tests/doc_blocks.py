"""The code block a doc marks for a test to run (docs/fink.md's ZTF and Rubin lines for fink-broker)."""

import re
from pathlib import Path


def marked_python_block(doc: Path, marker: str) -> str:
    """The first ```python block after ``marker``, which ``doc`` must hold exactly once."""
    text = doc.read_text(encoding="utf-8")
    assert text.count(marker) == 1, f"{doc.name} must mark the one block the test runs ({marker!r})"
    match = re.search(r"```python\n(.*?)```", text[text.index(marker):], re.S)
    assert match, f"no python block after the marker in {doc.name}"
    return match.group(1)
