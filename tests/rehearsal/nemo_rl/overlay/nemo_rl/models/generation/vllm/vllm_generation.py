"""Rehearsal stand-in for NeMo-RL v0.7.0's `VllmGeneration` (nemo_rl/models/generation/vllm/vllm_generation.py).

Overlaid by knowrl's tests/rehearsal/nemo_rl/build.sh on a checkout of NeMo-RL's
real source; NeMo-RL itself never ships this. vLLM needs a GPU; this class keeps
the real one's constructor and the GenerationInterface methods `grpo_train` and
`validate` call, and generates on the CPU in one `CpuGenerationWorker` Ray actor
colocated with the policy's worker in bundle 0 of the cluster's placement groups.
Like vLLM in NeMo-RL it starts from dummy weights and gets the policy's through
the refit `refit_policy_generation` runs before every rollout.
"""

from __future__ import annotations

from typing import Any

import ray
from nemo_rl.distributed.batched_data_dict import BatchedDataDict
from nemo_rl.distributed.virtual_cluster import RayVirtualCluster
from nemo_rl.models.generation.interfaces import GenerationDatumSpec, GenerationInterface, GenerationOutputSpec
from nemo_rl.models.generation.vllm.config import VllmConfig
from nemo_rl.models.policy.workers.cpu_standin_worker import REFIT, CpuGenerationWorker, bundle_zero


class VllmGeneration(GenerationInterface):
    @staticmethod
    def init_cluster_placement_groups(cluster: RayVirtualCluster, config: VllmConfig) -> None:
        cluster._init_placement_groups(strategy=None if config["colocated"]["enabled"] else "PACK")

    def __init__(
        self,
        cluster: RayVirtualCluster,
        config: VllmConfig,
        name_prefix: str = "vllm_policy",
        workers_per_node: int | list[int] | None = None,
        defer_model_load: bool = False,
    ):
        self.cfg = config
        self.dp_openai_server_base_urls: list[str | None] = [None]
        seed = int(config.get("vllm_kwargs", {}).get("seed", 0) or 0)
        self.worker = CpuGenerationWorker.options(**bundle_zero(cluster)).remote(dict(config), seed)
        ip, gpus = ray.get(self.worker.placement.remote())
        print(f"[stand-in] generation worker (CPU, for vLLM) on node {ip}, logical GPU {gpus}", flush=True)

    def load_and_start(self) -> None:
        pass

    def generate(
        self, data: BatchedDataDict[GenerationDatumSpec], greedy: bool = False
    ) -> BatchedDataDict[GenerationOutputSpec]:
        assert isinstance(data, BatchedDataDict) and "input_ids" in data and "input_lengths" in data
        return ray.get(self.worker.generate.remote(data, greedy))

    def prepare_refit_info(self, state_dict_info: dict[str, Any]) -> None:
        self.refit_info = state_dict_info

    def update_weights_via_ipc_zmq(self) -> list[ray.ObjectRef]:
        return [self.worker.load_weights.remote(REFIT.pop("weights"))]

    def update_weights_from_collective(self) -> list[ray.ObjectRef]:
        return self.update_weights_via_ipc_zmq()

    def init_collective(self, ip: str, port: int, world_size: int, *, train_world_size: int = 0) -> list:
        return []

    def prepare_for_generation(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def finish_generation(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def invalidate_kv_cache(self) -> bool:
        return True

    def clear_logger_metrics(self) -> None:
        pass

    def get_logger_metrics(self) -> dict[str, Any]:
        return {}

    def start_gpu_profiling(self) -> None:
        pass

    def stop_gpu_profiling(self) -> None:
        pass

    def shutdown(self) -> bool:
        ray.kill(self.worker)
        return True
