"""verl 0.9.1's `verl/plugin/platform/__init__.py`, plus the rehearsal's CPU platform (original: `.upstream`).

verl 0.9.1 registers CUDA, NPU and ROCm platforms and, finding no accelerator, falls back to CUDA, so on a CPU node
every `get_torch_device()` is `torch.cuda`. `platform_cpu` registers a platform that is detected only where none of
those is available (see platform_cpu.py); the rest is upstream's.
"""

from . import platform_cpu  # noqa: F401 -- registers "cpu" before anything asks for the platform
from .platform_base import PlatformBase
from .platform_manager import PlatformRegistry, get_platform, set_platform

__all__ = ["PlatformBase", "PlatformRegistry", "get_platform", "set_platform"]
