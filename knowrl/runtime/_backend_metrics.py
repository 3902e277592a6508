"""Training metrics back from NeMo-RL and verl: their TensorBoard event files -> the job's `metrics.parquet`.

Both backends log scalars through `torch.utils.tensorboard.SummaryWriter`
(NeMo-RL under `logger.log_dir/exp_NNN/tensorboard`, verl under
`$TENSORBOARD_DIR`). Each scalar is kept under `<backend>/<its tag>`, and
the ones knowrl compares across backends also under knowrl's own names
(`train/reward`, `train/zero_correct_groups`, ...), as the local trainer
writes them.

The event-file reader is written by hand on purpose: the files are TFRecord
frames around `Event` protos, a few dozen lines to decode, and the only
library that reads them (TensorBoard) would bring its server stack (grpcio,
werkzeug, protobuf) into knowrl for it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path

CANONICAL = {
    # verl (metric_utils / dp_actor names, 0.4 and 0.9): tag -> (knowrl name, scale)
    "verl": {
        "critic/score/mean": ("train/reward", 1.0),
        "actor/entropy": ("train/entropy", 1.0),
        "actor/pg_clipfrac": ("train/clip_fraction", 1.0),
        "response_length/mean": ("train/response_length", 1.0),
        "response_length/clip_ratio": ("train/truncated_fraction", 1.0),
        "train/num_gen_batches": ("train/generation_batches", 1.0),
    },
    # NeMo-RL v0.7.0 (nemo_rl/algorithms/grpo.py logs with prefix "train" / "validation")
    "nemo_rl": {
        "train/reward": ("train/reward", 1.0),
        "train/baseline_reward/pct_0": ("train/zero_correct_groups", 0.01),
        "train/baseline_reward/pct_1": ("train/all_correct_groups", 0.01),
        "train/mean_gen_tokens_per_sample": ("train/response_length", 1.0),
        "validation/accuracy": ("val/accuracy", 1.0),
    },
}


def _varint(buf: bytes, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf: bytes) -> Iterator[tuple[int, int, object]]:
    """(field number, wire type, value) of one protobuf message; lengths-delimited values as bytes."""
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = buf[i : i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = buf[i : i + n], i + n
        elif wire == 5:
            value, i = buf[i : i + 4], i + 4
        else:  # groups (3, 4) are not used by Event
            raise ValueError(f"unsupported protobuf wire type {wire}")
        yield num, wire, value


def _tensor_value(buf: bytes) -> float | None:
    """A scalar TensorProto (new-style summaries): float_val (5) or double_val (6)."""
    for num, wire, v in _fields(buf):
        if num == 5:
            return struct.unpack("<f", v[:4] if wire == 2 else v)[0]
        if num == 6:
            return struct.unpack("<d", v[:8])[0]
    return None


def read_scalars(path: Path) -> Iterator[tuple[int, str, float]]:
    """(step, tag, value) of every scalar in one event file; a torn last record (a killed writer) ends it."""
    data = path.read_bytes()
    i = 0
    while i + 12 <= len(data):
        (n,) = struct.unpack("<Q", data[i : i + 8])
        record = data[i + 12 : i + 12 + n]
        if len(record) < n or i + 16 + n > len(data):
            return
        i += 16 + n
        step, summary = 0, None
        for num, _, v in _fields(record):
            if num == 2:
                step = v
            elif num == 5:
                summary = v
        if summary is None:
            continue
        for num, _, value in _fields(summary):
            if num != 1:
                continue
            tag, scalar = None, None
            for f, wire, v in _fields(value):
                if f == 1:
                    tag = v.decode("utf-8", "replace")
                elif f == 2 and wire == 5:
                    scalar = struct.unpack("<f", v)[0]
                elif f == 8:
                    scalar = _tensor_value(v)
            if tag is not None and scalar is not None:
                yield step, tag, float(scalar)


def collect(job_dir: Path, backend: str, phase: int | None) -> int:
    """Write `<job>/metrics.parquet` from every event file under the job's folder; returns the row count."""
    from knowrl._io import write_rows

    context = json.dumps({"phase": phase, "backend": backend})
    canonical = CANONICAL.get(backend, {})
    seen: dict[tuple[int, str], float] = {}  # a resumed phase re-logs steps: the last value wins
    for path in sorted(job_dir.rglob("events.out.tfevents.*")):
        for step, tag, value in read_scalars(path):
            seen[(step, f"{backend}/{tag}")] = value
            if tag in canonical:
                name, scale = canonical[tag]
                seen[(step, name)] = value * scale
    rows = [{"step": s, "name": n, "value": v, "context": context} for (s, n), v in sorted(seen.items())]
    if rows:
        write_rows(job_dir / "metrics.parquet", rows)
    return len(rows)
