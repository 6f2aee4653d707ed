"""Strip outputs from notebooks (the pre-commit hook ``nbstrip``): notebooks live in git
without outputs, and the test suite executes them so they cannot rot.

Usage: ``python -m rmlite._nbstrip notebooks/*.ipynb``; exits 1 when it changed a file,
as pre-commit hooks do.

Examples
--------
>>> nb = {"cells": [{"cell_type": "code", "source": "1", "outputs": [{"x": 1}],
...        "execution_count": 3, "metadata": {"collapsed": False}}], "metadata": {}}
>>> strip(nb)
True
>>> nb["cells"][0]["outputs"], nb["cells"][0]["execution_count"], nb["cells"][0]["metadata"]
([], None, {})
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

_VOLATILE_CELL_METADATA = ("collapsed", "scrolled", "execution", "ExecuteTime")


def strip(notebook: dict[str, Any]) -> bool:
    """Remove outputs, execution counts and volatile metadata in place; True if any."""
    changed = False
    for cell in notebook.get("cells", []):
        meta = cell.get("metadata", {})
        for key in _VOLATILE_CELL_METADATA:
            if key in meta:
                del meta[key]
                changed = True
        if cell.get("cell_type") != "code":
            continue
        if cell.get("outputs"):
            cell["outputs"] = []
            changed = True
        if cell.get("execution_count") is not None:
            cell["execution_count"] = None
            changed = True
    return changed


def main(argv: Sequence[str] | None = None) -> int:
    """Strip each notebook given; 1 when a file changed (pre-commit then stops)."""
    changed = []
    for name in argv if argv is not None else sys.argv[1:]:
        path = Path(name)
        notebook = json.loads(path.read_text(encoding="utf-8"))
        if strip(notebook):
            text = json.dumps(notebook, indent=1, ensure_ascii=False) + "\n"
            path.write_text(text, encoding="utf-8")
            changed.append(name)
    for name in changed:
        print(f"stripped outputs from {name}")
    return 1 if changed else 0


if __name__ == "__main__":
    sys.exit(main())
