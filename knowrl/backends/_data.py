"""The training and validation sets, rendered once with their KP hints, in each backend's own record format.

KnowRL's hint prompt is rendered here, byte for byte as everywhere else in
knowrl (`kp.render_prompt`); each backend applies the model's chat template
itself, as the paper's verl run did:

- verl: parquet for `RLHFDataset` -- `prompt` a one-message chat list,
  `data_source`, `ability`, `reward_model.ground_truth` (what the reward
  function receives) and `extra_info` (index, problem id, the KPs shown).
- NeMo-RL: JSON lines for `ResponseDataset` -- `input` (the user message) and
  `output` (the gold answer, which `math_hf_data_processor` hands to the
  environment as `ground_truth`).

Validation sets carry no hints: the paper validates on the bare problems.
Beside them goes the grading site (`grading/_site.py`): the ANTLR runtime
knowrl's reward must parse with inside the backend's Hydra-pinned environment.
Both backends decode responses without special tokens before knowrl's reward
sees them, so the one check of the tokenizer's `</think>` is here too.
"""

from __future__ import annotations

import json
from pathlib import Path


def _rows(problems: list, selections: dict[str, tuple[int, ...]], suffix: str, source: str) -> list[dict]:
    from knowrl.kp import render_prompt

    return [
        {
            "id": p.id,
            "benchmark": p.benchmark,
            "prompt": render_prompt(p, selections.get(p.id, ()), suffix),
            "answer": p.answer,
            "kps": [p.kps[i] for i in sorted(selections.get(p.id, ()))],
            "source": source,
        }
        for p in problems
    ]


def rendered_sets(spec, run: Path) -> dict[str, list[dict]]:
    """Role (`train`, `validation-0`, ...) -> rows with the prompt exactly as the model will see it."""
    from knowrl.data import load_problems
    from knowrl.data._training import selections_for, train_problems

    problems = train_problems(spec)
    out = {"train": _rows(problems, selections_for(spec, run, problems), spec.data.prompt_suffix, "train")}
    for i, v in enumerate(spec.data.validation):
        loaded = load_problems(v.source, v.format, limit=v.limit, suffix=spec.data.prompt_suffix).problems
        out[f"validation-{i}"] = _rows(loaded, {}, spec.data.prompt_suffix, v.name or f"validation-{i}")
    return out


def verl_record(row: dict, index: int) -> dict:
    return {
        "data_source": row["source"] if row["source"] != "train" else f"knowrl/{row['benchmark']}",
        "prompt": [{"role": "user", "content": row["prompt"]}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": row["answer"]},
        "extra_info": {"index": index, "problem_id": row["id"], "kps": json.dumps(row["kps"], ensure_ascii=False)},
    }


def nemo_rl_record(row: dict, index: int) -> dict:
    return {"input": row["prompt"], "output": row["answer"], "problem_id": row["id"], "index": index}


GRADING_SITE = "data/grading-site"
"""Run-relative folder the backends' reward processes get as `KNOWRL_GRADER_SITE`."""


def refuse_special_think(spec, strips: str) -> None:
    """Refuse a tokenizer whose `</think>` is a special token when the reward requires it: the backend named in
    `strips` decodes responses with `skip_special_tokens=True`, so the token never reaches knowrl's reward and every
    reward would be 0. `strips` says who removes it, e.g. "verl's reward manager strips before ..."."""
    if not spec.reward.require_think_close:
        return
    from transformers import AutoTokenizer

    from knowrl._errors import KnowrlError

    name = spec.model.tokenizer or spec.model.path
    tok = AutoTokenizer.from_pretrained(name)
    think = tok.convert_tokens_to_ids("</think>")
    if think is not None and think in tok.all_special_ids:
        raise KnowrlError(
            f"the tokenizer of {name} marks </think> as a special token, which {strips}: every reward would be 0",
            hint="use a tokenizer where </think> is an ordinary added token, or set reward.require_think_close: false",
        )


def write_backend_data(spec, run: Path, backend) -> dict[str, int]:
    """Render every set and write it where the backend's compiled config reads it; returns rows per file."""
    from knowrl._io import write_rows
    from knowrl.grading._site import build_site

    build_site(run / GRADING_SITE)
    files = backend.data_files(spec)
    record = verl_record if backend.name == "verl" else nemo_rl_record
    counts = {}
    for role, rows in rendered_sets(spec, run).items():
        write_rows(run / files[role], [record(r, i) for i, r in enumerate(rows)])
        counts[files[role]] = len(rows)
    return counts
