"""What a run reads, fingerprinted: the same spec on changed data or weights is a different run.

The spec hash says what is computed; these fingerprints say on what. A local
file is its content's sha256, a folder the digest of its files' digests, a Hub
model or dataset the commit it resolves to (the local Hugging Face cache first,
then the Hub itself, once per process). Digests are cached by (path, size,
mtime) in the user's cache (`$XDG_CACHE_HOME/knowrl/fingerprints.json`), so a
3 GB checkpoint is read once, not on every `knowrl plan`, and planning writes
nothing where runs are stored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path

_DATA_SUFFIXES = (".jsonl", ".json", ".parquet")
_remote: dict[tuple[str, str], str | None] = {}  # (kind, repo id) -> revision, for this process


def spec_inputs(spec) -> dict[str, str]:
    """{what: where} for every input a run of `spec` reads (training and validation data, eval data, model)."""
    from knowrl.eval._suites import resolve_suite

    out: dict[str, str] = {}
    for i, s in enumerate(spec.data.train):
        out[f"data.train.{i}"] = s.source
    for i, s in enumerate(spec.data.validation):
        out[f"data.validation.{i}"] = s.source
    if spec.eval.enabled:
        suite = resolve_suite(
            spec.eval.suite, data=spec.eval.data, benchmarks=spec.eval.benchmarks, samples=spec.eval.samples
        )
        for b in suite.benchmarks:
            if b.source not in out.values():  # a suite's benchmarks often share one source
                out[f"eval.{b.name}"] = b.source
    out["model.path"] = spec.model.path
    if spec.model.tokenizer and spec.model.tokenizer != spec.model.path:
        out["model.tokenizer"] = spec.model.tokenizer
    return out


def fingerprint_inputs(spec) -> dict[str, dict]:
    """{what: {"source": ..., one of "sha256" | "revision" | "missing"}} for `spec_inputs`."""
    cache = _DigestCache(_cache_home() / "knowrl" / "fingerprints.json")
    out = {}
    for what, source in spec_inputs(spec).items():
        kind = "model" if what.startswith("model.") else "dataset"
        out[what] = {"source": source, **_fingerprint(source, kind, cache)}
    cache.save()
    return out


def describe_inputs(inputs: dict[str, dict]) -> dict[str, str]:
    """One line per input for people: its source and what pins it."""
    out = {}
    for what, f in inputs.items():
        if "sha256" in f:
            pin = f"sha256 {f['sha256'][:12]}" + (f" over {f['files']} files" if "files" in f else "")
        elif "revision" in f:
            pin = f"revision {f['revision'][:12]}" if f["revision"] else "revision unresolved (offline, not cached)"
        else:
            pin = "missing here"
        out[what] = f"{f['source']}  {pin}"
    return out


def inputs_digest(inputs: dict[str, dict]) -> str:
    return hashlib.sha256(json.dumps(inputs, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def changed_inputs(old: dict[str, dict], new: dict[str, dict]) -> list[str]:
    """The inputs whose fingerprint differs between two runs of one spec."""
    return sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))


def earlier_run(storage: str | Path, p) -> tuple[str, list[str]] | None:
    """The latest other run of the same spec under `storage` and the inputs that changed since (None if none)."""
    found = []
    for manifest in (Path(storage) / "runs").glob("*/manifest.json"):
        try:
            m = json.loads(manifest.read_text())
            if m["spec_hash"] == p.spec_hash and m["run_id"] != p.run_id:
                found.append((m.get("created_at") or "", m["run_id"], m.get("inputs") or {}))
        except (OSError, ValueError, KeyError, TypeError):  # a damaged manifest is not a run to compare with
            continue
    if not found:
        return None
    _, run_id, inputs = max(found)
    return run_id, changed_inputs(inputs, p.inputs)


def _fingerprint(source: str, kind: str, cache: _DigestCache) -> dict:
    if source.startswith("hf://"):
        from knowrl.spec._data import parse_hf_uri

        return {"revision": hub_revision(parse_hf_uri(source)[0], "dataset")}
    path = Path(source).expanduser()
    if path.is_file():
        return {"sha256": cache.digest(path)}
    if path.is_dir():
        files = sorted(
            f
            for f in path.rglob("*")
            if f.is_file()
            and not any(part.startswith(".") for part in f.relative_to(path).parts)
            and (kind == "model" or f.suffix in _DATA_SUFFIXES)
        )
        h = hashlib.sha256()
        for f in files:
            h.update(f"{f.relative_to(path)}\0{cache.digest(f)}\n".encode())
        return {"sha256": h.hexdigest(), "files": len(files)}
    looks_hub = kind == "model" and source.count("/") == 1 and not source.startswith((".", "/", "~"))
    if looks_hub:
        return {"revision": hub_revision(source, "model")}
    return {"missing": True}  # the job that reads it says so; the plan still shows


def _cache_home() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")


def hub_revision(repo_id: str, kind: str) -> str | None:
    """The commit a Hub repo resolves to: the local cache's `main`, else the Hub's (None when neither answers)."""
    key = (kind, repo_id)
    if key in _remote:
        return _remote[key]
    from huggingface_hub import constants

    ref = Path(constants.HF_HUB_CACHE) / f"{kind}s--{repo_id.replace('/', '--')}" / "refs" / "main"
    revision = None
    with contextlib.suppress(OSError):
        revision = ref.read_text().strip() or None
    if revision is None and not constants.HF_HUB_OFFLINE:
        from huggingface_hub import HfApi

        try:
            info = (HfApi().model_info if kind == "model" else HfApi().dataset_info)(repo_id, timeout=10)
            revision = info.sha
        except Exception:  # noqa: BLE001 -- offline, unknown repo, rate limit: all "cannot resolve"
            revision = None
    _remote[key] = revision
    return revision


class _DigestCache:
    """sha256 of files by path, valid while their (size, mtime_ns) hold; a damaged cache file is rebuilt."""

    def __init__(self, path: Path) -> None:
        self.path, self.dirty = path, False
        try:
            self.entries = json.loads(path.read_text())
            assert isinstance(self.entries, dict)
        except (OSError, ValueError, AssertionError):
            self.entries = {}

    def digest(self, f: Path) -> str:
        st, key = f.stat(), str(f.resolve())
        stamp = [st.st_size, st.st_mtime_ns]
        entry = self.entries.get(key)
        if not (isinstance(entry, list) and entry[:2] == stamp):
            from knowrl._io import file_sha256

            entry = self.entries[key] = [*stamp, file_sha256(f)]
            self.dirty = True
        return entry[2]

    def save(self) -> None:
        if not self.dirty:
            return
        from knowrl._io import atomic_write_bytes

        with contextlib.suppress(OSError):  # a read-only storage: digests are recomputed next time
            atomic_write_bytes(self.path, json.dumps(self.entries).encode())
