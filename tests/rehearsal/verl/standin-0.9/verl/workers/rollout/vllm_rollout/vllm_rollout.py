"""CPU stand-in for verl 0.9.1's `vllm_rollout.ServerAdapter` (original: `vllm_rollout.py.upstream`).

In the hybrid engine each trainer rank holds a `ServerAdapter`: the trainer's `update_weights` hands it the
engine's full tensors (`get_per_tensor_param`), which upstream streams over ZMQ/CUDA IPC into the co-located vLLM
workers, and it wakes and sleeps the replica's server. Here it does the same over Ray: every rank drains the
generator (gathering FSDP2 shards is a collective), the replica's first rank sends the tensors to its CPU server
(`vllm_async_server.vLLMHttpServer`, the same actor name upstream looks up), and the server samples with them.
"""

import logging
import os
from collections.abc import Generator

import ray
import torch
from verl import DataProto
from verl.workers.rollout.base import BaseRollout

logger = logging.getLogger(__file__)


class ServerAdapter(BaseRollout):
    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ["RANK"])
        local_world_size = int(os.environ["RAY_LOCAL_WORLD_SIZE"])
        per_replica = (
            self.config.tensor_model_parallel_size
            * self.config.data_parallel_size
            * self.config.pipeline_model_parallel_size
        )
        self.replica_rank = rank // per_replica if replica_rank == -1 else replica_rank
        self.rollout_rank = rank % per_replica
        self.node_rank = self.rollout_rank // local_world_size
        self._has_server = self.rollout_rank == 0
        self.server_handle = None
        self.sleep_level = 1

    def _ensure_server_handle(self) -> bool:
        if not self._has_server:
            return False
        if self.server_handle is None:
            name = f"{self.config.get('name', 'vllm')}_server_{self.replica_rank}_{self.node_rank}"
            self.server_handle = ray.get_actor(name)
        return True

    async def resume(self, tags: list[str]):
        if self.config.free_cache_engine and self._ensure_server_handle():
            await self.server_handle.wake_up.remote(tags=tags)

    async def release(self):
        if self.config.free_cache_engine and self._ensure_server_handle():
            await self.server_handle.sleep.remote()

    @torch.no_grad()
    async def update_weights(
        self, weights: Generator, global_steps: int = None, wire_format: str = "named_tensors", **kwargs
    ):
        assert wire_format == "named_tensors", f"the CPU stand-in takes full tensors only, not {wire_format!r}"
        state = {name: tensor.detach().to("cpu", torch.float32).clone() for name, tensor in weights}
        if self._ensure_server_handle():
            await self.server_handle.load_weights.remote(state)
            await self.server_handle.clear_kv_cache.remote()
            if global_steps is not None:
                await self.server_handle.set_global_steps.remote(global_steps)

    def generate_sequences(self, prompts: DataProto) -> DataProto:
        raise NotImplementedError("as upstream: generation goes through the replica's server (vLLMReplica)")
