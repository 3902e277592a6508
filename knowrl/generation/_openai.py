"""The `openai` generator: any OpenAI-compatible server (e.g. `vllm serve`).

One request per sample (each with its own seed and token count), sent by a
thread pool; the `openai` client retries 429/5xx/timeouts with exponential
backoff.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from knowrl._errors import KnowrlError
from knowrl.generation._base import Completion, Messages, SamplingParams


class OpenAIGenerator:
    def __init__(
        self,
        model: str,
        base_url: str,
        *,
        api_key: str = "EMPTY",
        concurrency: int = 32,
        timeout_s: float = 600.0,
        max_retries: int = 4,
    ) -> None:
        try:
            import openai
        except ImportError:
            raise KnowrlError(
                "the openai generator needs the `openai` package", hint="pip install 'knowrl[local]'"
            ) from None
        self.model_id = model
        self.concurrency = concurrency
        self.client = openai.OpenAI(base_url=base_url, api_key=api_key, timeout=timeout_s, max_retries=max_retries)
        self.on_batch: Callable[[int], None] | None = None

    def _one(self, messages: Messages, params: SamplingParams, seed: int) -> Completion:
        import openai

        extra = {"top_k": params.top_k} if params.top_k > 0 else {}
        try:
            r = self.client.chat.completions.create(
                model=self.model_id,
                messages=messages,
                n=1,
                temperature=params.temperature,
                top_p=params.top_p,
                max_tokens=params.max_tokens,
                seed=seed,
                extra_body=extra or None,
            )
        except openai.APIError as e:
            raise KnowrlError(
                f"generation server {self.client.base_url} failed: {e}",
                hint="check the server's log; knowrl already retried with backoff",
            ) from None
        choice = r.choices[0]
        tokens = r.usage.completion_tokens if r.usage else 0
        finish = "length" if choice.finish_reason == "length" else "stop"
        if self.on_batch:
            self.on_batch(1)
        return Completion(text=choice.message.content or "", tokens=tokens, finish_reason=finish, seed=seed)

    def generate(
        self, prompts: Sequence[Messages], params: SamplingParams, n: int, seeds: Sequence[Sequence[int]]
    ) -> list[list[Completion]]:
        with ThreadPoolExecutor(self.concurrency) as pool:
            futures = [
                [pool.submit(self._one, p, params, seeds[i][j]) for j in range(n)] for i, p in enumerate(prompts)
            ]
            return [[f.result() for f in row] for row in futures]

    def close(self) -> None:
        self.client.close()
