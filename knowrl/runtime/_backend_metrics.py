"""Training metrics back from NeMo-RL and verl: their TensorBoard event files -> the job's `metrics.parquet`.

Both backends log scalars through `torch.utils.tensorboard.SummaryWriter`
(NeMo-RL under `logger.log_dir/exp_NNN/tensorboard`, verl under
`$TENSORBOARD_DIR`). Each scalar is kept under `<backend>/<its tag>` (the last
value it logged at the step), and the ones knowrl compares across backends
also under knowrl's own names, each of which means one thing on every backend.

DAPO's dynamic sampling drops the prompt groups whose rewards all agree (all
wrong or all right) before the update, so a number taken before that filter
and one taken after it are different quantities: after it, every group is
mixed, the mean reward leans to the middle and no group is all-wrong. The
paper's "reward sparsity" is a before-the-filter quantity. A name without a
suffix is taken before the filter, over the step's generated samples (all of
them, or a part chosen without looking at rewards); `_after_filter` is taken
over the samples the update trained on. A name a backend cannot give is
missing for it (`NOT_LOGGED`), never filled with a look-alike.

    name                                  where each backend's value comes from (grpo.py: NeMo-RL v0.7.0
                                          nemo_rl/algorithms/grpo.py; dapo_ray_trainer.py: the fork bed9a05)
    train/reward                          before the filter
        local    TRL `reward`: every sample (the local backend has no filter)
        nemo_rl  `train/reward`: the first prompts_per_step x n samples generated (batches with no mixed group
                 left out), unfiltered: dynamic_sampling keeps `total_reward` whole, then slices it (grpo.py:1326,
                 1338, 1374, 2831)
        verl     fork: `critic/score/mean` when its filter is off (`train/passed_num` 0); else not logged
    train/reward_after_filter             the trained samples; = train/reward without a filter
        nemo_rl  `train/filtered_reward` (grpo.py:2830), or `train/reward` when dynamic sampling is off
        verl     `critic/score/mean` (metric_utils on the filtered, trimmed batch)
    train/zero_correct_groups             fraction of generated prompt groups with every reward 0, before the filter
    train/all_correct_groups              the same with every reward 1
        local    the trainer's own count over the generation batch
        nemo_rl  `baseline_reward/pct_0`, `pct_1` / 100, only without dynamic sampling: they are taken on the
                 filtered batch's baselines (grpo.py:1983, 2505), where with the filter they are always 0
        verl     fork: `train/all_wrong_num_prompt_in_batch` (`all_correct_`) / (`train/num_gen_batches` x
                 `train/gen_batch_size`), counted over every generated group (dapo_ray_trainer.py:197-207)
    train/response_length                 mean response tokens per generated sample
    train/truncated_fraction              fraction of generated samples stopped by the response length limit
        local    TRL `completions/mean_length`, `completions/clipped_ratio`
        nemo_rl  `train/mean_gen_tokens_per_sample`, `train/truncation_rate`: logged once per generation batch
                 (grpo.py:2411) and again with the step (2862); their mean over the step's generation batches
        verl     fork, filter off: as below
    train/response_length_after_filter    the same over the trained samples
    train/truncated_fraction_after_filter
        verl     `response_length/mean`, `response_length/clip_ratio` (length == the padded response width)
        nemo_rl  only without dynamic sampling (= the generated batch)
    train/entropy                         token-mean entropy of the policy on the trained samples' responses
        local    TRL `entropy`;  verl `actor/entropy` (the recipe, on the filtered batch, before the update)
        nemo_rl  `train/approx_entropy` x `train/global_valid_seqs` / `train/num_valid_samples`: NeMo-RL sums
                 one token-mean per optimizer mini-batch over the step (grpo.py:2858), so the raw value is
                 mini-batches-per-step times the entropy; its estimate uses the sampled token only
    train/clip_fraction                   fraction of trained response tokens where the PPO clip bound was active
        local    TRL `clip_ratio/region_mean`;  verl `actor/pg_clipfrac`;  nemo_rl not logged
    train/generation_batches              generation batches drawn for the step, the last included
        verl     `train/num_gen_batches`;  nemo_rl `train/dynamic_sampling_num_gen_batches` (filter on only)
    val/accuracy                          nemo_rl `validation/accuracy`: mean reward over the validation samples

"Every reward 0" is "no sample correct" under knowrl's default reward
(correct 1, incorrect 0, no format penalty, no overlong shaping); NeMo-RL's
pct_0 is a group mean of 0 because knowrl compiles
`use_leave_one_out_baseline: false`.

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

DEFINITIONS = {
    "train/reward": "mean reward of the step's generated samples, before dynamic sampling's filter",
    "train/reward_after_filter": "mean reward of the samples the update trained on (= train/reward without a filter)",
    "train/zero_correct_groups": "fraction of the step's generated prompt groups whose rewards are all 0, before "
    "the filter",
    "train/all_correct_groups": "fraction of the step's generated prompt groups whose rewards are all 1, before "
    "the filter",
    "train/response_length": "mean response tokens per generated sample, before the filter",
    "train/response_length_after_filter": "mean response tokens per trained sample",
    "train/truncated_fraction": "fraction of generated samples stopped by the response length limit, before the filter",
    "train/truncated_fraction_after_filter": "fraction of trained samples stopped by the response length limit",
    "train/entropy": "token-mean entropy of the policy over the trained samples' response tokens",
    "train/clip_fraction": "fraction of trained response tokens where the PPO clip bound was active",
    "train/generation_batches": "generation batches drawn for the step, the last one included",
    "val/accuracy": "mean reward over the validation samples",
}
"""Every knowrl name for a training metric and what it means on every backend."""

CANONICAL = {
    # verl, 0.4 (the authors' fork) and 0.9.1 + verl-recipe's dapo: tags that mean one thing whatever the config
    "verl": {
        "critic/score/mean": "train/reward_after_filter",
        "response_length/mean": "train/response_length_after_filter",
        "response_length/clip_ratio": "train/truncated_fraction_after_filter",
        "actor/entropy": "train/entropy",
        "actor/pg_clipfrac": "train/clip_fraction",
        "train/num_gen_batches": "train/generation_batches",
    },
    # NeMo-RL v0.7.0 (nemo_rl/algorithms/grpo.py logs with prefix "train" / "validation")
    "nemo_rl": {
        "train/reward": "train/reward",
        "train/mean_gen_tokens_per_sample": "train/response_length",
        "train/truncation_rate": "train/truncated_fraction",
        "train/dynamic_sampling_num_gen_batches": "train/generation_batches",
        "validation/accuracy": "val/accuracy",
    },
    # the local trainer (TRL's GRPOTrainer logs, written as train/<key>; there is no filter)
    "local": {
        "train/reward": "train/reward",
        "train/completions/mean_length": "train/response_length",
        "train/completions/clipped_ratio": "train/truncated_fraction",
        "train/entropy": "train/entropy",
        "train/clip_ratio/region_mean": "train/clip_fraction",
        "train/zero_correct_groups": "train/zero_correct_groups",
        "train/all_correct_groups": "train/all_correct_groups",
    },
}
"""Backend tag -> knowrl name, where the tag alone decides; the rest is in `canonical_values`."""

_VERL_FILTERED = {
    "train/reward": "with the filter on, verl logs the scores of the filtered batch only",
    "train/response_length": "with the filter on, verl logs the lengths of the filtered batch only",
    "train/truncated_fraction": "with the filter on, verl logs the lengths of the filtered batch only",
    "val/accuracy": "verl names validation scores per data source (val-core/...): they stay under verl/",
}
NOT_LOGGED = {
    "local": {
        "train/generation_batches": "one generation batch per step: there is no filter to draw more for",
        "val/accuracy": "the local trainer does not validate",
    },
    "nemo_rl": {
        "train/zero_correct_groups": "with dynamic sampling NeMo-RL counts baselines only after the filter",
        "train/all_correct_groups": "with dynamic sampling NeMo-RL counts baselines only after the filter",
        "train/response_length_after_filter": "with dynamic sampling, only the generation batches' lengths",
        "train/truncated_fraction_after_filter": "with dynamic sampling, only the generation batches' truncation",
        "train/clip_fraction": "NeMo-RL's ClippedPGLossFn logs no clip fraction",
    },
    "verl 0.4": _VERL_FILTERED,
    "verl 0.9": {
        **_VERL_FILTERED,
        "train/zero_correct_groups": "verl-recipe's dapo counts no all-wrong groups (the authors' fork does)",
        "train/all_correct_groups": "verl-recipe's dapo counts no all-correct groups (the authors' fork does)",
    },
}
"""What each backend release does not give with dynamic sampling on (the paper's setting), and why."""

GENERATION_BATCH_TAGS = {"nemo_rl": {"train/mean_gen_tokens_per_sample", "train/truncation_rate"}}
"""Tags a backend logs once per generation batch at the step's number, then once more with the step's metrics."""

_STEP_DONE = {"nemo_rl": "train/reward"}
"""A tag logged only with the step's own metrics: when it is there, the last generation-batch value is the repeat."""


def _nemo_rl(t: dict[str, float]) -> dict[str, float]:
    out = {}
    if "train/filtered_reward" in t:  # logged only with dynamic sampling (grpo.py:2829)
        out["train/reward_after_filter"] = t["train/filtered_reward"]
    else:  # no filter: the trained batch is the generated one, and the baselines are every group's mean
        for tag, name in (
            ("train/reward", "train/reward_after_filter"),
            ("train/mean_gen_tokens_per_sample", "train/response_length_after_filter"),
            ("train/truncation_rate", "train/truncated_fraction_after_filter"),
            ("train/baseline_reward/pct_0", "train/zero_correct_groups"),
            ("train/baseline_reward/pct_1", "train/all_correct_groups"),
        ):
            if tag in t:
                out[name] = t[tag] / 100 if "pct_" in tag else t[tag]
    entropy, seqs, samples = (t.get(f"train/{k}") for k in ("approx_entropy", "global_valid_seqs", "num_valid_samples"))
    if entropy is not None and seqs and samples:
        out["train/entropy"] = entropy * seqs / samples  # / (optimizer mini-batches in the step)
    return out


def _verl(t: dict[str, float]) -> dict[str, float]:
    if "train/passed_num" not in t:  # verl-recipe's dapo: nothing says whether the filter ran
        return {}
    if t["train/passed_num"] == 0:  # the fork with its filter off: the trained batch is every generated sample
        pairs = (
            ("critic/score/mean", "train/reward"),
            ("response_length/mean", "train/response_length"),
            ("response_length/clip_ratio", "train/truncated_fraction"),
        )
        return {name: t[tag] for tag, name in pairs if tag in t}
    groups = t.get("train/num_gen_batches", 0) * t.get("train/gen_batch_size", 0)
    if groups <= 0:
        return {}
    pairs = (
        ("train/all_wrong_num_prompt_in_batch", "train/zero_correct_groups"),
        ("train/all_correct_num_prompt_in_batch", "train/all_correct_groups"),
    )
    return {name: t[tag] / groups for tag, name in pairs if tag in t}


def _local(t: dict[str, float]) -> dict[str, float]:
    pairs = (
        ("train/reward", "train/reward_after_filter"),
        ("train/completions/mean_length", "train/response_length_after_filter"),
        ("train/completions/clipped_ratio", "train/truncated_fraction_after_filter"),
    )
    return {name: t[tag] for tag, name in pairs if tag in t}


_DERIVED = {"nemo_rl": _nemo_rl, "verl": _verl, "local": _local}


def canonical_values(backend: str, tags: dict[str, float]) -> dict[str, float]:
    """knowrl's names for one step of a backend's scalars (tag -> value), as far as they determine them."""
    out = {name: tags[tag] for tag, name in CANONICAL.get(backend, {}).items() if tag in tags}
    out.update(_DERIVED[backend](tags) if backend in _DERIVED else {})
    return out


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


def _step_value(backend: str, tag: str, values: list[float], step_tags: dict) -> float:
    """One value for knowrl's names from what one file logged under `tag` at one step.

    A generation-batch tag is averaged over the step's generation batches (all
    the same size), less the repeat the step's own metrics add; anything else
    is its last value.
    """
    if tag not in GENERATION_BATCH_TAGS.get(backend, ()):
        return values[-1]
    if len(values) > 1 and _STEP_DONE.get(backend) in step_tags:
        values = values[:-1]
    return sum(values) / len(values)


def collect(job_dir: Path, backend: str, phase: int | None) -> int:
    """Write `<job>/metrics.parquet` from every event file under the job's folder; returns the row count."""
    from knowrl._io import write_rows

    context = json.dumps({"phase": phase, "backend": backend})
    seen: dict[tuple[int, str], float] = {}
    steps: dict[int, dict[str, float]] = {}  # step -> tag -> the value knowrl's names are taken from
    for path in sorted(job_dir.rglob("events.out.tfevents.*")):  # a resumed phase re-logs steps: the last file wins
        logged: dict[int, dict[str, list[float]]] = {}
        for step, tag, value in read_scalars(path):
            logged.setdefault(step, {}).setdefault(tag, []).append(value)
        for step, tags in logged.items():
            for tag, values in tags.items():
                seen[(step, f"{backend}/{tag}")] = values[-1]
                steps.setdefault(step, {})[tag] = _step_value(backend, tag, values, tags)
    for step, tags in steps.items():
        for name, value in canonical_values(backend, tags).items():
            seen[(step, name)] = value
    rows = [{"step": s, "name": n, "value": v, "context": context} for (s, n), v in sorted(seen.items())]
    if rows:
        write_rows(job_dir / "metrics.parquet", rows)
    return len(rows)
