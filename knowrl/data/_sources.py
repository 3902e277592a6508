"""Where records come from: local .jsonl/.parquet files or folders, and `hf://` datasets.

Every record travels with its location (`file:line`, `file:row N`,
`hf://...@split row N`) so a bad one is reported where a user can find it.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from knowrl._errors import KnowrlError
from knowrl.data._formats import FORMATS, RecordError, detect_format, read_record
from knowrl.data._problem import Problem
from knowrl.spec._base import DEFAULT_PROMPT_SUFFIX
from knowrl.spec._data import parse_hf_uri

SUFFIXES = (".jsonl", ".json", ".parquet")


class DataError(KnowrlError):
    """A dataset that cannot be read."""

    exit_code = 2


@dataclass
class LoadResult:
    """Problems read from one source, with every record that was skipped and why."""

    source: str
    format: str
    problems: list[Problem] = field(default_factory=list)
    skipped: list[RecordError] = field(default_factory=list)


def data_files(path: Path) -> list[Path]:
    """The data files of a file or folder (recursively, sorted); a .jsonl wins over a same-named .parquet."""
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise DataError(
            f"{path}: no such file or folder",
            hint="give a .jsonl/.parquet file, a folder of them, or hf://org/name@split",
        )
    files = sorted(p for p in path.rglob("*") if p.suffix in SUFFIXES and p.is_file())
    stems = {p.with_suffix("") for p in files if p.suffix in (".jsonl", ".json")}
    files = [p for p in files if not (p.suffix == ".parquet" and p.with_suffix("") in stems)]
    if not files:
        raise DataError(f"{path}: no .jsonl or .parquet files in this folder")
    return files


def _jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    with path.open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{n}"
            try:
                yield where, json.loads(line)
            except json.JSONDecodeError as e:
                yield where, RecordError("<json>", f"not valid JSON: {e.msg} at column {e.colno}", where)


def _parquet(path: Path) -> Iterator[tuple[str, Any]]:
    import pyarrow.parquet as pq

    try:
        reader = pq.ParquetFile(path)
    except Exception as e:
        raise DataError(f"{path}: not a readable parquet file ({e})") from None
    row = 0
    for batch in reader.iter_batches(batch_size=1024):
        for record in batch.to_pylist():
            row += 1
            yield f"{path}:row {row}", record


def _hub_reachable(timeout_s: float = 3.0) -> bool:
    """Whether the Hub answers within the timeout (DNS included, which ignores socket timeouts)."""
    import socket
    from urllib.parse import urlparse

    host = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co")).hostname or "huggingface.co"
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((host, 443), timeout=timeout_s).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout_s)
    return bool(ok)


def _hf(uri: str) -> Iterator[tuple[str, Any]]:
    repo, config, split = parse_hf_uri(uri)
    offline = not _hub_reachable()
    if offline:  # use the local cache only: no retries against an unreachable hub
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"reading {uri} needs the `datasets` package",
            hint="pip install 'knowrl[local]', or set the source to a local folder of .jsonl/.parquet files",
        ) from None
    try:
        loaded = datasets.load_dataset(repo, config, split=split)
    except Exception as e:
        why = "the Hugging Face Hub is unreachable and it is not cached" if offline else str(e).splitlines()[0]
        raise DataError(
            f"cannot load dataset {repo}{f':{config}' if config else ''}{f'@{split}' if split else ''}: {why}",
            hint=f"download it where the Hub is reachable (e.g. `hf download --repo-type dataset {repo}"
            " --local-dir DIR`) and set the source to that local folder of .jsonl/.parquet files",
        ) from None
    parts = loaded.items() if isinstance(loaded, dict) else [(split, loaded)]
    for name, ds in parts:
        for i, record in enumerate(ds):
            yield f"{uri if split else f'{uri}@{name}'} row {i + 1}", record


def iter_records(source: str) -> Iterator[tuple[str, Any]]:
    """(location, raw record) for every record of a source; malformed JSON lines arrive as `RecordError`s."""
    if source.startswith("hf://"):
        yield from _hf(source)
        return
    for path in data_files(Path(source)):
        yield from _parquet(path) if path.suffix == ".parquet" else _jsonl(path)


def load_problems(
    source: str,
    fmt: str = "auto",
    *,
    skip_bad: bool = False,
    limit: int | None = None,
    suffix: str = DEFAULT_PROMPT_SUFFIX,
) -> LoadResult:
    """Read a source into `Problem`s; a bad record stops the load unless `skip_bad` (then it is counted)."""
    if fmt != "auto" and fmt not in FORMATS:
        raise DataError(f"unknown format '{fmt}'", hint=f"use auto or one of: {', '.join(FORMATS)}")
    result = LoadResult(source=source, format=fmt)
    seen: dict[str, int] = {}
    for where, record in iter_records(source):
        if limit is not None and len(result.problems) >= limit:
            break
        try:
            if isinstance(record, RecordError):
                raise record
            if result.format == "auto":
                detected = detect_format(record) if isinstance(record, dict) else None
                if detected is None:
                    fields = ", ".join(sorted(record)) if isinstance(record, dict) else type(record).__name__
                    raise RecordError("<record>", f"matches no known format (fields: {fields})", where)
                result.format = detected
            problem = read_record(record, result.format, suffix)
        except RecordError as e:
            located = e if e.where else e.at(where)
            if not skip_bad:
                raise DataError(
                    located.message, hint="fix the record, or pass --skip-bad to skip bad records (they are counted)"
                ) from None
            result.skipped.append(located)
            continue
        n = seen.get(problem.id, 0)
        seen[problem.id] = n + 1
        # the same problem twice in one source keeps distinct ids
        pid = f"{problem.id}-{n + 1}" if n else problem.id
        result.problems.append(replace(problem, id=pid, origin=where))
    if result.format == "auto":
        raise DataError(f"{source}: no records")
    return result
