"""The `vllm` generator: vLLM's offline `LLM` engine on GPUs (imported only when used)."""

from __future__ import annotations

from collections.abc import Sequence

from knowrl._errors import KnowrlError
from knowrl.generation._base import Completion, Messages, SamplingParams


class VLLMGenerator:
    def __init__(
        self,
        model_path: str,
        *,
        dtype: str = "bfloat16",
        tensor_parallel: int = 1,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        seed: int = 0,
    ) -> None:
        try:
            from vllm import LLM
        except ImportError:
            raise KnowrlError(
                "the vllm generator needs vLLM on a GPU machine",
                hint="pip install 'knowrl[gpu]', or use --generator transformers",
            ) from None
        self.model_id = model_path
        self.llm = LLM(
            model=model_path,
            dtype=dtype,
            tensor_parallel_size=tensor_parallel,
            seed=seed,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
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
        outputs = self.llm.chat([prompts[i] for i, _ in flat], sampling, use_tqdm=False)
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
