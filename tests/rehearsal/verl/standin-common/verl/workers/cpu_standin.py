"""What the CPU stand-ins of verl's GPU workers share: gloo, FSDP2 on the CPU, and a rollout engine's weights.

Part of the rehearsal's stand-in checkouts only (tests/rehearsal/verl): it is copied into the checkout's
`verl/workers/` beside the stand-in worker modules, never shipped by knowrl. It imports torch and transformers
alone, so it serves the fork (transformers 4.51) and verl 0.9.1 (transformers 5), both on torch 2.13.

Why each piece stands in for something:
- FSDP1 (`FullyShardedDataParallel`) refuses a machine without an accelerator; FSDP2 (`fully_shard`) shards over
  gloo on the CPU, and verl's checkpoint managers and mergers read its DTensor shards like any other.
- vLLM keeps its own copy of the weights, refreshed from the FSDP shards after every update; `RolloutCopy` is that
  copy (a plain Hugging Face model), refreshed the same way.
- verl 0.9.1 opens its process group with the backend "cpu:gloo,<device>:<collective backend>", which on the CPU
  reads "cpu:gloo,cpu:gloo" and torch refuses as a duplicate: it is opened as "gloo", what it means.
- `torch.cpu` lacks memory-statistics and RNG-state calls that verl makes through `get_torch_device()` on any
  device.
"""

from __future__ import annotations

import functools
import os

import torch
import torch.distributed as dist


def init_gloo() -> None:
    """The process group a GPU worker would open over NCCL, over gloo (RANK etc. set by verl's Worker)."""
    if not dist.is_initialized():
        dist.init_process_group("gloo", rank=int(os.environ["RANK"]), world_size=int(os.environ["WORLD_SIZE"]))


def cpu_device_shims() -> None:
    """No-op memory statistics and torch's own RNG state on `torch.cpu` (see the module's docstring)."""
    zero = lambda *args, **kwargs: 0  # noqa: E731
    for name, fn in {
        "empty_cache": lambda: None,
        "max_memory_allocated": zero,
        "max_memory_reserved": zero,
        "memory_allocated": zero,
        "memory_reserved": zero,
        "reset_peak_memory_stats": lambda *args, **kwargs: None,
        "mem_get_info": lambda *args, **kwargs: (0, 0),
        # the CPU device's generator is torch's own: verl 0.9.1's checkpoint manager restores the device's state
        # for a device named "cpu" too (it saves none, as "cpu" is already there)
        "get_rng_state": torch.get_rng_state,
        "set_rng_state": torch.set_rng_state,
    }.items():
        if not hasattr(torch.cpu, name):
            setattr(torch.cpu, name, fn)


def gloo_process_groups() -> None:
    """`init_process_group` taking verl 0.9.1's "cpu:gloo,cpu:gloo" for the "gloo" it means (idempotent)."""
    original = dist.init_process_group
    if getattr(original, "cpu_standin", False):
        return

    @functools.wraps(original)
    def init_process_group(backend=None, *args, **kwargs):
        return original("gloo" if backend == "cpu:gloo,cpu:gloo" else backend, *args, **kwargs)

    init_process_group.cpu_standin = True
    dist.init_process_group = init_process_group


def fully_shard_fn():
    from torch.distributed.fsdp import fully_shard

    return fully_shard


def cpu_mesh():
    from torch.distributed.device_mesh import init_device_mesh

    return init_device_mesh("cpu", (dist.get_world_size(),), mesh_dim_names=("fsdp",))


def full_state_dict(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    """Every parameter gathered whole on every rank (a collective: all ranks call it together)."""
    return {
        k: (v.full_tensor() if hasattr(v, "full_tensor") else v).detach().clone()
        for k, v in module.state_dict().items()
    }


class RolloutCopy:
    """The rollout engine's own weights: a plain model, loaded from the FSDP shards when the trainer syncs them."""

    def __init__(self, model_path: str) -> None:
        from transformers import AutoModelForCausalLM

        self.model = AutoModelForCausalLM.from_pretrained(model_path, torch_dtype=torch.float32)
        self.model.eval()
        self.version = 0

    def load(self, state: dict[str, torch.Tensor]) -> None:
        missing, unexpected = self.model.load_state_dict(state, strict=False)
        if unexpected or [k for k in missing if not k.endswith("lm_head.weight")]:
            raise RuntimeError(f"rollout weights do not match the trained model: {missing=} {unexpected=}")
        self.version += 1

    @torch.no_grad()
    def sample(self, prompt_ids: list[int], params: dict, eos_token_id, pad_token_id: int, seed: int | None):
        """One completion, sampled as vLLM's `SamplingParams` describe it; (token ids, log-probs of them)."""
        from transformers import GenerationConfig

        temperature = float(params.get("temperature", 1.0))
        greedy = temperature == 0.0
        top_k = int(params.get("top_k", -1))
        config = GenerationConfig(
            do_sample=not greedy,
            temperature=None if greedy else temperature,
            top_p=None if greedy else float(params.get("top_p", 1.0)),
            top_k=None if greedy or top_k <= 0 else top_k,
            max_new_tokens=int(params.get("max_tokens") or params.get("max_new_tokens") or 16),
            eos_token_id=eos_token_id,
            pad_token_id=pad_token_id,
        )
        if seed is not None:
            torch.manual_seed(seed)
        inputs = torch.tensor([prompt_ids], dtype=torch.long)
        out = self.model.generate(
            input_ids=inputs,
            attention_mask=torch.ones_like(inputs),
            generation_config=config,
            output_scores=True,
            return_dict_in_generate=True,
        )
        tokens = out.sequences[0, inputs.shape[1] :].tolist()  # a batch of one: no padding; a stop token stays in
        logps = [torch.log_softmax(s[0].float(), -1)[t].item() for s, t in zip(out.scores, tokens, strict=True)]
        return tokens, logps
