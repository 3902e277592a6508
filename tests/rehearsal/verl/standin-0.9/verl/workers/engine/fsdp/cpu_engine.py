"""verl 0.9.1's FSDP language-model engine, registered for the CPU: the rehearsal's stand-in for the GPU engine.

Upstream registers `FSDPEngineWithLMHead` for devices "cuda" and "npu" only, so on a CPU node
`EngineRegistry.new(model_type="language_model", backend="fsdp")` has no engine to build. This subclass is that
same engine -- its micro-batching, forward and loss plumbing, optimizer and scheduler, `FSDPCheckpointManager`
checkpoints, `get_per_tensor_param` weight export -- with only what needs a GPU changed, before upstream's
constructor reads it:

- FSDP2 (`fully_shard` over gloo) instead of FSDP1, which refuses a machine without an accelerator;
- the padded forward instead of the remove-padding one (`use_remove_padding`: flash-attention's varlen kernels are
  GPU-only), and SDPA attention instead of `flash_attention_2`;
- float32 parameters and no `torch.compile` of the entropy (minutes of compilation on a small CPU).

Configs are frozen dataclasses; the stand-in sets these fields with `object.__setattr__`.
"""

import torch
from verl.workers.cpu_standin import cpu_device_shims

from ..base import EngineRegistry
from .transformer_impl import FSDPEngineWithLMHead


def _force(config, **values) -> None:
    for name, value in values.items():
        object.__setattr__(config, name, value)


@EngineRegistry.register(model_type="language_model", backend=["fsdp", "fsdp2"], device="cpu")
class CPUFSDPEngineWithLMHead(FSDPEngineWithLMHead):
    def __init__(self, model_config, engine_config, optimizer_config, checkpoint_config):
        cpu_device_shims()
        _force(engine_config, strategy="fsdp2", use_torch_compile=False, use_remove_padding=False)
        _force(engine_config, mixed_precision={"param_dtype": "fp32", "reduce_dtype": "fp32", "buffer_dtype": "fp32"})
        _force(model_config, use_remove_padding=False, use_fused_kernels=False)
        model_config.hf_config._attn_implementation = "sdpa"
        super().__init__(model_config, engine_config, optimizer_config, checkpoint_config)
        self._autocast_dtype = torch.float32
