"""Pydantic's validation errors rewritten as located, actionable `SpecIssue`s."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from knowrl._errors import SpecIssue
from knowrl.spec._paths import allowed_keys, did_you_mean, user_key
from knowrl.spec._yaml import Locations


def _given(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def issues_from(
    error: ValidationError, locations: Locations, *, default_where: str | None, root=None
) -> list[SpecIssue]:
    from knowrl.spec._experiment import ExperimentSpec
    from knowrl.spec._load import where_of

    root = root or ExperimentSpec
    out: list[SpecIssue] = []
    for e in error.errors():
        loc = tuple(e["loc"])
        key = user_key(root, loc)
        where = where_of(key, locations) or default_where
        kind = e["type"]
        if kind == "cross_field":
            for sub, msg in e["ctx"]["issues"]:
                full = f"{key}.{sub}" if key and sub else key or sub
                out.append(SpecIssue(full, msg, where=where_of(full, locations) or where))
            continue
        if kind == "extra_forbidden":
            allowed = allowed_keys(root, loc[:-1])
            hint = did_you_mean(str(loc[-1]), allowed) or f"allowed keys: {', '.join(allowed)}"
            out.append(SpecIssue(key, "unknown key", where=where, hint=hint))
            continue
        if kind == "missing":
            out.append(SpecIssue(key, "required key is missing", where=where, hint=f"add `{key.split('.')[-1]}: ...`"))
            continue
        if kind == "union_tag_invalid":
            ctx = e["ctx"]
            tags = [t.strip(" '") for t in ctx["expected_tags"].split(",")]
            hint = did_you_mean(str(ctx["tag"]), tags) or f"use one of: {', '.join(tags)}"
            out.append(
                SpecIssue(
                    f"{key}.{ctx['discriminator'].strip(chr(39))}",
                    f"unknown value {ctx['tag']!r}",
                    where=where,
                    hint=hint,
                )
            )
            continue
        msg = e["msg"].removeprefix("Value error, ")
        if (
            kind not in ("union_tag_invalid", "union_tag_not_found")
            and not isinstance(e.get("input"), dict | list)
            and repr(e.get("input")) not in msg
        ):
            msg = f"{msg} (given {_given(e.get('input'))})"
        out.append(SpecIssue(key, msg, where=where))
    return out
