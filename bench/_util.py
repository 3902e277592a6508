"""Shared helpers for bench scripts: a readable table, then one JSON line."""

from __future__ import annotations

import json
import sys


def report(title: str, headers: list[str], rows: list[list[object]], result: dict) -> None:
    widths = [max(len(str(h)), *(len(str(r[i])) for r in rows)) for i, h in enumerate(headers)]
    print(title)
    print("  ".join(str(h).ljust(w) for h, w in zip(headers, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))
    sys.stdout.write(json.dumps(result) + "\n")
