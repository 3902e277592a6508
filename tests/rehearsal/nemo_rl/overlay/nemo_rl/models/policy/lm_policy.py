"""Rehearsal stand-in for NeMo-RL v0.7.0's `Policy` (nemo_rl/models/policy/lm_policy.py), on the CPU.

Overlaid by knowrl's tests/rehearsal/nemo_rl/build.sh on a checkout of NeMo-RL's
real source; NeMo-RL itself never ships this. It keeps the real class's
constructor and the ColocatablePolicyInterface methods `grpo_train` calls, and
hands the GPU-bound work -- log-probs, the training step, checkpoint I/O, the
weights a refit sends -- to one `CpuPolicyWorker` Ray actor placed in bundle 0
of the RayVirtualCluster's placement groups (which NeMo-RL's own code creates for
every bundle of the cluster). Everything around it is NeMo-RL's.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any, Union

import ray
from nemo_rl.algorithms.loss.interfaces import LossFunction
from nemo_rl.distributed.batched_data_dict import BatchedDataDict
from nemo_rl.distributed.virtual_cluster import RayVirtualCluster
from nemo_rl.models.generation.interfaces import GenerationDatumSpec, GenerationInterface, GenerationOutputSpec
from nemo_rl.models.policy import PolicyConfig
from nemo_rl.models.policy.interfaces import ColocatablePolicyInterface, LogprobOutputSpec
from nemo_rl.models.policy.workers.cpu_standin_worker import REFIT, CpuPolicyWorker, bundle_zero
from nemo_rl.utils.checkpoint import CheckpointingConfig
from nemo_rl.utils.timer import Timer

PathLike = Union[str, "os.PathLike[Any]"]


class Policy(ColocatablePolicyInterface, GenerationInterface):
    def __init__(
        self,
        cluster: RayVirtualCluster,
        config: PolicyConfig,
        tokenizer,
        name_prefix: str = "lm_policy",
        workers_per_node: int | list[int] | None = None,
        init_optimizer: bool = True,
        weights_path: PathLike | None = None,
        optimizer_path: PathLike | None = None,
        init_reference_model: bool = True,
        processor=None,
        worker_extension_cls_fqn: str | None = None,
    ):
        if init_reference_model:
            raise NotImplementedError("the CPU stand-in keeps no reference model (the rehearsal trains at KL 0)")
        self.cfg = config
        self.cluster = cluster
        self.worker = CpuPolicyWorker.options(**bundle_zero(cluster)).remote(
            dict(config),
            os.path.abspath(weights_path) if weights_path else None,
            os.path.abspath(optimizer_path) if optimizer_path else None,
            init_optimizer,
        )

    # --- what grpo_train calls ---------------------------------------------------------------------------------
    def print_node_ip_and_gpu_id(self) -> list[tuple[str, int]]:
        ip, gpus = ray.get(self.worker.placement.remote())
        print(f"[stand-in] policy worker (CPU) on node {ip}, logical GPU {gpus} of {self.cluster.world_size()}")
        return [(ip, g) for g in gpus]

    def get_logprobs(
        self, data: BatchedDataDict[GenerationDatumSpec], timer: Timer | None = None
    ) -> BatchedDataDict[LogprobOutputSpec]:
        mbs = self.cfg["logprob_batch_size"]
        return BatchedDataDict({"logprobs": ray.get(self.worker.get_logprobs.remote(data, mbs))})

    def get_reference_policy_logprobs(self, data, micro_batch_size=None, timer=None):
        raise NotImplementedError("the CPU stand-in keeps no reference model (the rehearsal trains at KL 0)")

    def get_topk_logits(self, data, k, micro_batch_size=None, timer=None):
        raise NotImplementedError("distillation is not rehearsed")

    def train(
        self,
        data: BatchedDataDict[Any],
        loss_fn: LossFunction,
        eval_mode: bool = False,
        gbs: int | None = None,
        mbs: int | None = None,
        timer: Timer | None = None,
        check_dim_skip_keys: Iterable[str] | None = None,
    ) -> dict[str, Any]:
        gbs = gbs or self.cfg["train_global_batch_size"]
        mbs = mbs or self.cfg["train_micro_batch_size"]
        r = ray.get(self.worker.train.remote(data, loss_fn, eval_mode, gbs, mbs))
        return {"loss": r["global_loss"], "grad_norm": r["grad_norm"], "all_mb_metrics": r["all_mb_metrics"]}

    def save_checkpoint(
        self,
        weights_path: str,
        optimizer_path: str | None = None,
        tokenizer_path: str | None = None,
        checkpointing_cfg: CheckpointingConfig | None = None,
    ) -> None:
        ray.get(self.worker.save.remote(weights_path, optimizer_path, tokenizer_path))

    def prepare_refit_info(self) -> dict[str, Any] | None:
        return ray.get(self.worker.refit_info.remote())

    def stream_weights_via_ipc_zmq(self, buffer_size_bytes: int, kv_scales=None) -> list[ray.ObjectRef]:
        REFIT["weights"] = self.worker.weights.remote()  # the generation worker loads these from the object store
        return [self.worker.placement.remote()]

    def broadcast_weights_for_collective(self, kv_scales=None) -> list[ray.ObjectRef]:
        return self.stream_weights_via_ipc_zmq(0)

    def get_free_memory_bytes(self) -> int:
        return 1 << 30

    def init_collective(self, ip: str, port: int, world_size: int, *, train_world_size: int) -> list[ray.ObjectRef]:
        return []

    def prepare_for_generation(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def finish_generation(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def prepare_for_training(self, *args: Any, **kwargs: Any) -> None:
        pass

    def prepare_for_lp_inference(self, *args: Any, **kwargs: Any) -> None:
        pass

    def finish_training(self, *args: Any, **kwargs: Any) -> None:
        pass

    def finish_inference(self) -> None:
        pass

    def offload_before_refit(self) -> None:
        pass

    def offload_after_refit(self) -> None:
        pass

    def invalidate_kv_cache(self, *args: Any, **kwargs: Any) -> bool:
        return True

    def calibrate_qkv_fp8_scales(self, data, micro_batch_size=None, percentile=99.9, margin=1.05, include_q=False):
        raise NotImplementedError("FP8 is not rehearsed")

    def generate(
        self, data: BatchedDataDict[GenerationDatumSpec], greedy: bool = False
    ) -> BatchedDataDict[GenerationOutputSpec]:
        raise NotImplementedError("the rehearsal generates with the VllmGeneration stand-in")

    def start_gpu_profiling(self) -> None:
        pass

    def stop_gpu_profiling(self) -> None:
        pass

    def shutdown(self) -> bool:
        ray.kill(self.worker)
        return True
