"""CPU stand-in for verl 0.9.1's `vllm_async_server` (original: `vllm_async_server.py.upstream`).

`vLLMReplica` is what `LLMServerManager` builds for `rollout.name=vllm`; upstream it starts a vLLM engine per
replica on the replica's GPUs, behind an OpenAI-compatible HTTP server, and verl's agent loop calls the server
actor's token-in-token-out `generate`. The stand-in keeps the replica's shape -- one server actor per replica and
node, named as upstream names it, pinned to the node of the replica's trainer workers -- and the server's
interface (generate, sleep/wake_up, kv-cache calls, abort/resume, global steps), and samples on the CPU with a plain
copy of the policy that the trainer's `update_weights` refreshes (`ServerAdapter`). Everything around it -- the
agent loop and its workers, the load balancer, the reward loop, the checkpoint-engine manager -- is verl's.
"""

import asyncio
import logging

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
from verl.workers.rollout.replica import RolloutReplica, TokenOutput

logger = logging.getLogger(__file__)


class vLLMHttpServer:  # noqa: N801 -- upstream's name, which other modules import
    """One replica's rollout server on the CPU: sampling with the policy's latest weights."""

    def __init__(self, config, model_config, rollout_mode, workers, replica_rank, node_rank, **kwargs):
        from verl.utils.config import omega_conf_to_dataclass
        from verl.workers.config import HFModelConfig
        from verl.workers.cpu_standin import RolloutCopy, cpu_device_shims

        cpu_device_shims()
        self.config = omega_conf_to_dataclass(config)  # as upstream's _init_config / _init_model_config
        self.model_config = omega_conf_to_dataclass(model_config, dataclass_type=HFModelConfig)
        self.rollout_mode, self.workers = rollout_mode, workers
        self.replica_rank, self.node_rank = replica_rank, node_rank
        self.engine = RolloutCopy(self.model_config.local_path)
        tok = self.model_config.tokenizer
        gen = self.model_config.generation_config
        self.eos = gen.eos_token_id if gen is not None and gen.eos_token_id is not None else tok.eos_token_id
        self.pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        self.global_steps = None
        self.awake = True
        self._lock = asyncio.Lock()
        self._address = ray.util.get_node_ip_address().strip("[]")

    def get_master_address(self):
        return self._address, 0, 0

    async def launch_server(self, **kwargs):
        return None

    def get_server_address(self):
        return self._address, 30000 + self.replica_rank  # an identifier: nothing here serves HTTP

    async def load_weights(self, state: dict) -> int:
        async with self._lock:
            self.engine.load(state)
        return self.engine.version

    async def generate(self, prompt_ids, sampling_params, request_id, **kwargs) -> TokenOutput:
        params = dict(sampling_params)
        room = self.config.max_model_len - len(prompt_ids) if self.config.max_model_len else None
        limit = params.get("max_tokens") or self.config.response_length
        params["max_tokens"] = min(limit, room) if room else limit
        async with self._lock:  # one sample at a time, on a CPU thread off the actor's event loop
            tokens, logps = await asyncio.to_thread(
                self.engine.sample, list(prompt_ids), params, self.eos, self.pad, None
            )
        return TokenOutput(
            token_ids=tokens,
            log_probs=logps if params.get("logprobs") is not None else None,
            stop_reason="completed",
            extra_fields={"global_steps": self.global_steps, "num_cached_tokens": 0},
        )

    async def wake_up(self, tags=None):
        self.awake = True

    async def sleep(self):
        self.awake = False

    async def clear_kv_cache(self):
        return None

    async def release_kv_cache(self):
        return None

    async def resume_kv_cache(self):
        return None

    async def set_global_steps(self, global_steps: int):
        self.global_steps = global_steps

    async def wait_for_requests_to_drain(self):
        async with self._lock:
            return None

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False):
        return {"aborted_count": 0, "request_ids": []}

    async def abort_request(self, request_id: str, reset_prefix_cache: bool = True):
        return {"aborted": False, "request_id": request_id}

    async def resume_engine_generation(self):
        return None

    async def open_submission_gate(self):
        return None

    async def resume_generation(self):
        return None

    async def start_profile(self, **kwargs):
        return None

    async def stop_profile(self):
        return None


class vLLMReplica(RolloutReplica):  # noqa: N801
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.server_class = ray.remote(vLLMHttpServer)

    async def launch_servers(self):
        assert len(self.workers) == self.world_size, f"{len(self.workers)} workers for world size {self.world_size}"
        node_ids = await asyncio.gather(
            *[w.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()) for w in self.workers]
        )
        per_node = self.gpus_per_replica_node
        for node_rank in range(self.nnodes):
            node_id = node_ids[node_rank * per_node]
            server = self.server_class.options(
                scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node_id, soft=False),
                name=f"vllm_server_{self.replica_rank}_{node_rank}{self.name_suffix}",
                max_concurrency=self.max_concurrency,
                num_cpus=0,
            ).remote(
                config=self.config,
                model_config=self.model_config,
                rollout_mode=self.rollout_mode,
                workers=self.workers[
                    node_rank * self.gpus_per_replica_node : (node_rank + 1) * self.gpus_per_replica_node
                ],
                replica_rank=self.replica_rank,
                node_rank=node_rank,
            )
            self.servers.append(server)
        await asyncio.gather(*[s.launch_server.remote() for s in self.servers])
        address, port = await self.servers[0].get_server_address.remote()
        self._server_handle = self.servers[0]
        self._server_address = f"{address}:{port}"

    async def sleep(self):
        await self.servers[0].wait_for_requests_to_drain.remote()
        await asyncio.gather(*[s.sleep.remote() for s in self.servers])
