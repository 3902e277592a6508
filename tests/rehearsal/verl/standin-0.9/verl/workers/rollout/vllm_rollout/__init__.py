"""verl 0.9.1's `vllm_rollout` package without vLLM (original: `__init__.py.upstream`, which refuses to import
when the `vllm` package is absent): the rehearsal's CPU stand-ins of the rollout server and its adapter."""

from .vllm_rollout import ServerAdapter  # noqa: F401
