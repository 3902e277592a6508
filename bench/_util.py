"""Shared helpers for bench scripts: a readable table, then one JSON line; scratch folders that do not outlive them."""

from __future__ import annotations

import atexit
import json
import shutil
import sys
import tempfile
from pathlib import Path


def scratch() -> Path:
    """A new temporary folder, removed when the bench exits (a quickstart's TRL checkpoints alone are 5.6 GB)."""
    path = Path(tempfile.mkdtemp(prefix="knowrl-bench-"))
    atexit.register(shutil.rmtree, path, ignore_errors=True)
    return path


def report(title: str, headers: list[str], rows: list[list[object]], result: dict) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    print(title)
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    sys.stdout.write(json.dumps(result) + "\n")
