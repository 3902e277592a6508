"""verl 0.9.1's `verl/workers/engine/fsdp/__init__.py`, plus the rehearsal's CPU engine (original: `.upstream`).

The same three names as upstream, and one import more: `cpu_engine` registers verl's own FSDP engine for the CPU
device, which upstream registers for "cuda" and "npu" only (see cpu_engine.py for what it changes and why).
"""

from .cpu_engine import CPUFSDPEngineWithLMHead
from .fsdp_turbo_impl import FSDPTurboEngineWithLMHead
from .transformer_impl import FSDPEngine, FSDPEngineWithLMHead

__all__ = ["CPUFSDPEngineWithLMHead", "FSDPEngine", "FSDPEngineWithLMHead", "FSDPTurboEngineWithLMHead"]
