"""The published KnowRL record formats, read exactly as released, into `Problem`s.

Each reader raises `RecordError` naming the field that breaks its format; the
loader decides whether that stops the load or skips the record with a count.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from knowrl._errors import KnowrlError
from knowrl.data._problem import Problem, canonical_benchmark, content_id
from knowrl.grading import strip_boxed
from knowrl.spec._base import DEFAULT_PROMPT_SUFFIX

FORMATS = ("knowrl-annotations", "knowrl-train", "verl-math", "plain")
HINT_MARK = "\n\n## Hint\n"


class RecordError(KnowrlError):
    """One record that breaks its format."""

    def __init__(self, field: str, detail: str, where: str = "") -> None:
        self.field, self.detail, self.where = field, detail, where
        super().__init__(f"{where}: field '{field}': {detail}" if where else f"field '{field}': {detail}")

    def at(self, where: str) -> RecordError:
        """The same error, located at `where` (file:line or file:row N)."""
        return RecordError(self.field, self.detail, where)


def detect_format(record: Mapping[str, Any]) -> str | None:
    """The format a record's fields say it is in, or None."""
    keys = set(record)
    if "kp_list" in keys and "dataset" in keys and any(k.endswith(("_kept_kp_index", "_selected_kps")) for k in keys):
        return "knowrl-annotations"
    if (
        "kp_list" in keys
        and "data_source" in keys
        and ("kept_kp_index" in keys or any(k.endswith("_selected") for k in keys))
    ):
        return "knowrl-train"
    if {"prompt", "reward_model", "data_source"} <= keys:
        return "verl-math"
    if {"problem", "answer"} <= keys:
        return "plain"
    return None


def _need(record: Mapping[str, Any], key: str, kind: type | tuple[type, ...]) -> Any:
    if key not in record or record[key] is None:
        raise RecordError(key, "missing")
    value = record[key]
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise RecordError(key, f"expected {names}, got {type(value).__name__}")
    return value


def _user_text(record: Mapping[str, Any]) -> str:
    chat = _need(record, "prompt", (list, tuple))
    users = [m for m in chat if isinstance(m, Mapping) and m.get("role") == "user"]
    if not users or not isinstance(users[-1].get("content"), str):
        raise RecordError("prompt", "expected a chat list with a user message [{role: user, content: ...}]")
    return users[-1]["content"]


def _gold(record: Mapping[str, Any]) -> str:
    rm = _need(record, "reward_model", Mapping)
    gt = rm.get("ground_truth")
    if gt is None or (isinstance(gt, str) and not gt.strip()):
        raise RecordError("reward_model.ground_truth", "missing or empty")
    if isinstance(gt, list | tuple):  # some verl datasets list equivalent answers; the first is canonical
        gt = gt[0]
    return strip_boxed(str(gt))


def _kps(record: Mapping[str, Any], required: bool) -> tuple[str, ...]:
    if "kp_list" not in record or record["kp_list"] is None:
        if required:
            raise RecordError("kp_list", "missing")
        return ()
    kps = record["kp_list"]
    if not isinstance(kps, Sequence) or isinstance(kps, str) or not all(isinstance(k, str) for k in kps):
        raise RecordError("kp_list", "expected a list of strings")
    return tuple(kps)


def _indices(record: Mapping[str, Any], key: str, n: int) -> tuple[int, ...]:
    value = record[key]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise RecordError(key, f"expected a list of indices, got {type(value).__name__}")
    out = []
    for i in value:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < n:
            raise RecordError(key, f"index {i!r} is not in 0..{n - 1} (kp_list has {n} KPs)")
        out.append(i)
    return tuple(sorted(set(out)))


def _by_text(record: Mapping[str, Any], key: str, kps: tuple[str, ...]) -> tuple[int, ...]:
    value = record[key]
    if not isinstance(value, Sequence) or isinstance(value, str):
        raise RecordError(key, f"expected a list of KP strings, got {type(value).__name__}")
    index = {k.strip(): i for i, k in enumerate(kps)}
    out = []
    for text in value:
        if not isinstance(text, str) or text.strip() not in index:
            raise RecordError(key, f"KP {str(text)[:60]!r} is not in kp_list")
        out.append(index[text.strip()])
    return tuple(sorted(set(out)))


def _selections(record: Mapping[str, Any], kps: tuple[str, ...]) -> dict[str, tuple[int, ...]]:
    """`X_kept_kp_index` (indices), `X_selected_kps` / `X_selected` (strings), `kept_kp_index` (name `kept`)."""
    out: dict[str, tuple[int, ...]] = {}
    for key in record:
        if record[key] is None:
            continue
        if key.endswith("_kept_kp_index") or key == "kept_kp_index":
            name = key.removesuffix("_kept_kp_index") if key != "kept_kp_index" else "kept"
            out[name] = _indices(record, key, len(kps))
    for key in record:
        if record[key] is None:
            continue
        for suffix in ("_selected_kps", "_selected"):
            if key.endswith(suffix):
                name = key.removesuffix(suffix)
                by_text = _by_text(record, key, kps)
                if name in out and out[name] != by_text:
                    raise RecordError(key, f"disagrees with {name}_kept_kp_index {list(out[name])}")
                out[name] = by_text
    return out


def _strip_suffix(text: str, suffix: str) -> str:
    text = text.rstrip()
    if text.endswith(suffix):
        text = text[: -len(suffix)]
    return text.rstrip()


def read_annotations(record: Mapping[str, Any], suffix: str) -> Problem:
    kps = _kps(record, required=True)
    text = _user_text(record)
    return Problem(
        id=str(record.get("id") or content_id(text)),
        benchmark=canonical_benchmark(str(_need(record, "dataset", str))),
        problem=text,
        answer=_gold(record),
        kps=kps,
        selections=_selections(record, kps),
    )


def read_train(record: Mapping[str, Any], suffix: str) -> Problem:
    kps = _kps(record, required=True)
    text = _user_text(record)
    text = text.split(HINT_MARK, 1)[0] if HINT_MARK in text else _strip_suffix(text, suffix)
    return Problem(
        id=str(record.get("id") or content_id(text)),
        benchmark=str(_need(record, "data_source", str)),
        problem=text,
        answer=_gold(record),
        kps=kps,
        selections=_selections(record, kps),
    )


def read_verl(record: Mapping[str, Any], suffix: str) -> Problem:
    text = _strip_suffix(_user_text(record), suffix)
    kps = _kps(record, required=False)
    return Problem(
        id=str(record.get("id") or content_id(text)),
        benchmark=canonical_benchmark(str(_need(record, "data_source", str))),
        problem=text,
        answer=_gold(record),
        kps=kps,
        selections=_selections(record, kps),
    )


def read_plain(record: Mapping[str, Any], suffix: str) -> Problem:
    text = _need(record, "problem", str)
    answer = record.get("answer")
    if answer is None or not str(answer).strip():
        raise RecordError("answer", "missing or empty")
    kps = _kps(record, required=False)
    solution = record.get("solution")
    return Problem(
        id=str(record.get("id") or content_id(text)),
        benchmark=canonical_benchmark(str(record.get("benchmark") or record.get("dataset") or "plain")),
        problem=text.strip(),
        answer=strip_boxed(str(answer)),
        kps=kps,
        selections=_selections(record, kps),
        solution=solution if isinstance(solution, str) else None,
    )


READERS: dict[str, Callable[[Mapping[str, Any], str], Problem]] = {
    "knowrl-annotations": read_annotations,
    "knowrl-train": read_train,
    "verl-math": read_verl,
    "plain": read_plain,
}


def read_record(record: Any, fmt: str, suffix: str = DEFAULT_PROMPT_SUFFIX) -> Problem:
    if not isinstance(record, Mapping):
        raise RecordError("<record>", f"expected an object, got {type(record).__name__}")
    return READERS[fmt](record, suffix)
