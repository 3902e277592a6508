"""Tokens/s of the transformers generator on the tiny model, batch 1..32, and the eval's own overhead.

Two figures, each against a baseline measured in the same run:
- throughput at batch 32 over batch 1 (the same prompts, seeds and lengths);
- the eval's overhead: its time outside the model's `generate` calls (prompt
  rendering, tokenisation, decoding, grading, parquet writes, scoring) over
  the time inside them, on a 256-problem suite at batch 32. The baseline is
  the generation the eval exists for; target: at most 10% on top of it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import report, scratch  # noqa: E402

MAX_TOKENS = 64
TARGET = 0.10
"""Overhead over the time inside `generate`, at most."""


def main() -> None:
    from knowrl.eval import EvalRequest, resolve_suite, run_eval
    from knowrl.generation import SamplingParams, build_tiny_model, make_generator, user_prompt

    tmp = scratch()
    model = str(build_tiny_model(tmp / "tiny"))
    params = SamplingParams(1.0, 1.0, -1, MAX_TOKENS)
    prompts = [user_prompt(f"Problem {i}: what is {i} + {i}? Please reason step by step.") for i in range(32)]
    rows = []
    for batch in (1, 2, 4, 8, 16, 32):
        gen = make_generator("transformers", model, batch_size=batch)
        gen.generate(prompts[:2], params, 1, [[0], [1]])  # warm-up
        t = time.perf_counter()
        out = gen.generate(prompts, params, 2, [[2 * i, 2 * i + 1] for i in range(32)])
        dt = time.perf_counter() - t
        tokens = sum(c.tokens for row in out for c in row)
        rows.append([batch, tokens, f"{dt:.2f}", f"{tokens / dt:,.0f}"])

    # Overhead of a whole eval at batch 32: time outside model.generate.
    data = tmp / "data.jsonl"
    data.write_text(
        "".join(
            f'{{"problem": "What is {i} plus {i}?", "answer": "{2 * i}", "kp_list": ["Addition."], '
            f'"css_kept_kp_index": [0], "benchmark": "arith"}}\n'
            for i in range(256)
        )
    )
    suite_file = tmp / "suite.yaml"
    suite_file.write_text(f"name: arith\nbenchmarks:\n  - {{name: arith, source: {data}, samples: 4}}\n")
    gen = make_generator("transformers", model, batch_size=32)
    inside = [0.0]
    real_generate = gen.model.generate

    def timed_generate(*args, **kwargs):
        t0 = time.perf_counter()
        try:
            return real_generate(*args, **kwargs)
        finally:
            inside[0] += time.perf_counter() - t0

    gen.model.generate = timed_generate
    request = EvalRequest(resolve_suite(str(suite_file)), ["none", "css"], params)
    t = time.perf_counter()
    run_eval(gen, request, tmp / "out")
    wall = time.perf_counter() - t
    outside = wall - inside[0]
    ratio, share = outside / inside[0], outside / wall
    speedup = float(rows[-1][3].replace(",", "")) / float(rows[0][3].replace(",", ""))
    rows.append(["eval @32", "", f"{wall:.2f}", f"outside generate {outside:.2f} s = {ratio:.1%} of inside"])
    report(
        "transformers generator on the tiny model (2 x 32 prompts, up to 64 new tokens)",
        ["batch", "tokens", "seconds", "tokens/s"],
        rows,
        {
            "bench": "eval_throughput",
            "ratio": round(ratio, 4),
            "baseline": "the eval's own time inside model.generate, same run",
            "target": f"<={TARGET}",
            "met": ratio <= TARGET,
            "share_of_wall": round(share, 4),
            "batch32_over_batch1": round(speedup, 2),
            "tokens_per_s": {str(r[0]): float(r[3].replace(",", "")) for r in rows[:-1]},
            "eval_wall_s": round(wall, 2),
            "inside_generate_s": round(inside[0], 2),
        },
    )


if __name__ == "__main__":
    main()
