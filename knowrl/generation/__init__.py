"""Text generation behind one protocol: transformers (local), vLLM (GPU), OpenAI-compatible servers."""

from __future__ import annotations

from knowrl.generation._base import Completion, Generator, Messages, SamplingParams, user_prompt

__all__ = ["Completion", "Generator", "Messages", "SamplingParams", "build_tiny_model", "make_generator", "user_prompt"]


def build_tiny_model(out, *, seed: int = 0):
    from knowrl.generation._tiny import build_tiny_model as build

    return build(out, seed=seed)


def make_generator(
    kind: str,
    model: str,
    *,
    dtype: str = "float32",
    batch_size: int = 16,
    use_chat_template: bool = True,
    server_url: str | None = None,
    tensor_parallel: int = 1,
    seed: int = 0,
    max_model_len: int | None = None,
) -> Generator:
    """The generator a spec or command line asks for; each engine is imported only here."""
    from knowrl._errors import UsageError

    if kind == "transformers":
        from knowrl.generation._transformers import TransformersGenerator

        return TransformersGenerator(model, dtype=dtype, batch_size=batch_size, use_chat_template=use_chat_template)
    if kind == "vllm":
        from knowrl.generation._vllm import VLLMGenerator

        return VLLMGenerator(
            model, dtype=dtype, tensor_parallel=tensor_parallel, seed=seed, max_model_len=max_model_len
        )
    if kind == "openai":
        if not server_url:
            raise UsageError("the openai generator needs a server URL", hint="pass --server-url http://HOST:8000/v1")
        from knowrl.generation._openai import OpenAIGenerator

        return OpenAIGenerator(model, server_url)
    raise UsageError(f"unknown generator '{kind}'", hint="use transformers, vllm or openai")
