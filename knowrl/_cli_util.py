"""Small helpers shared by the command modules."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from knowrl._errors import UsageError


def key_values(
    items: list[str] | None, option: str, example: str, convert: Callable[[str], Any] | None = None
) -> dict[str, Any]:
    """Repeated `--option key=value` flags as a dict; values are YAML unless `convert` says otherwise."""
    if convert is None:
        import yaml

        convert = yaml.safe_load
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} {item!r}: expected key=value", hint=f"e.g. {option} {example}")
        try:
            out[key] = convert(value)
        except ValueError:
            raise UsageError(
                f"{option} {item!r}: cannot read the value {value!r}", hint=f"e.g. {option} {example}"
            ) from None
    return out
