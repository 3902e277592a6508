"""A CPU platform for verl 0.9.1's platform registry: the rehearsal's stand-in for the accelerator layer.

verl asks the platform for its device ("cpu", `torch.cpu`), its collective backend (gloo) and its Ray resource.
The resource stays "GPU": the rehearsal's nodes advertise logical GPUs, and verl places its workers on GPU bundles
exactly as on a GPU cluster. Detected only where no CUDA/NPU/ROCm platform is (it is registered after them, and
declines when torch sees an accelerator), so a checkout with it still picks the real platform on a GPU machine.
"""

from contextlib import contextmanager
from types import ModuleType
from typing import Any

import torch
from verl.workers.cpu_standin import gloo_process_groups

from .platform_base import PlatformBase
from .platform_manager import PlatformRegistry

gloo_process_groups()  # verl's "cpu:<backend>,<device>:<backend>" would name the CPU twice


@PlatformRegistry.register(platform="cpu")
class PlatformCPU(PlatformBase):
    @property
    def device_name(self) -> str:
        return "cpu"

    @property
    def vendor_name(self) -> str:
        return "cpu"

    @property
    def device_module(self) -> ModuleType:
        from verl.workers.cpu_standin import cpu_device_shims

        cpu_device_shims()
        return torch.cpu

    def is_available(self) -> bool:
        return True

    def is_platform_available(self, use_smi_check=False) -> bool:
        return not torch.cuda.is_available() and not hasattr(torch, "npu")

    def current_device(self) -> str:
        return torch.cpu.current_device()  # "cpu": verl moves tensors `.to(get_device_id())`

    def device_count(self) -> int:
        return 1

    def set_device(self, device_index: int) -> None:
        return None

    def synchronize(self, device_index: int | None = None) -> None:
        return None

    def manual_seed(self, seed: int) -> None:
        torch.manual_seed(seed)

    def manual_seed_all(self, seed: int) -> None:
        torch.manual_seed(seed)

    def set_allocator_settings(self, settings: str) -> None:
        return None

    def empty_cache(self) -> None:
        return None

    def get_device_capability(self, device_index: int = 0) -> tuple[int | None, int | None]:
        return None, None

    def communication_backend_name(self) -> str:
        return "gloo"

    def visible_devices_envvar(self) -> str:
        return "CUDA_VISIBLE_DEVICES"

    @contextmanager
    def nvtx_range(self, msg: str):
        yield

    def profiler_start(self) -> None:
        return None

    def profiler_stop(self) -> None:
        return None

    def ray_resource_name(self) -> str:
        return "GPU"

    def ray_noset_envvars(self) -> list[str]:
        return ["RAY_EXPERIMENTAL_NOSET_CUDA_VISIBLE_DEVICES"]

    def is_ipc_supported(self) -> bool:
        return False

    def cudart(self) -> Any:
        return None
