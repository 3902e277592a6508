"""CPU stand-in for the fork's `verl/workers/fsdp_workers.py` (its original is kept beside it as `.upstream`).

The rehearsal's 0.4 checkout (the KnowRL authors' fork at bed9a05) imports this module where the recipe's
`main_dapo` asks for `ActorRolloutRefWorker`. What the original does on GPUs -- FSDP1 over NCCL, vLLM generation,
flash-attention varlen forwards -- cannot run on a CPU; everything around it is the fork's own code, called here as
the original calls it:

- verl's `Worker` base (rank, world size and master address from verl's register center) and its `@register`
  dispatch, so the fork's `RayWorkerGroup` splits, gathers and places these workers on the cluster's logical GPUs;
- the fork's `DataParallelPPOActor` for old log-probs, entropy and the policy update (its DAPO loss: clip low/high,
  dual clip, token-mean aggregation, gradient clipping, dynamic micro-batches), with the fork's AdamW and
  warmup schedule built as the original builds them;
- the fork's `HFRollout` for generation, on a rollout copy of the weights refreshed from the shards before each
  generation (the role of vLLM and its `FSDPVLLMShardingManager`);
- the fork's `FSDPCheckpointManager`: `global_step_N/actor` with each rank's model, optimizer and extra-state shards
  and the config and tokenizer, which the fork's `scripts/model_merger.py` reads and resume loads.

Stood in: FSDP2 (`fully_shard` over gloo) in place of FSDP1, which needs an accelerator; the padded forward in place
of the remove-padding one (flash-attention's varlen kernels are GPU-only); no `torch.compile` of the entropy (its
first call compiles for minutes on a small CPU); a tiny model in float32. `CriticWorker` and `RewardModelWorker`
are not stood in: GRPO with a rule reward uses neither, and they refuse to start.
"""

import logging
import os

import psutil
import torch
import torch.distributed as dist
from codetiming import Timer
from omegaconf import DictConfig, OmegaConf, open_dict
from verl import DataProto
from verl.single_controller.base import Worker
from verl.single_controller.base.decorator import Dispatch, register
from verl.utils import hf_tokenizer
from verl.utils.checkpoint.fsdp_checkpoint_manager import FSDPCheckpointManager
from verl.utils.fs import copy_to_local
from verl.utils.model import get_generation_config
from verl.workers.cpu_standin import RolloutCopy, cpu_device_shims, cpu_mesh, full_state_dict, init_gloo

logger = logging.getLogger(__file__)
logger.setLevel(os.getenv("VERL_LOGGING_LEVEL", "WARN"))


class ActorRolloutRefWorker(Worker):
    """The hybrid actor + rollout (+ reference) worker, on the CPU."""

    def __init__(self, config: DictConfig, role: str):
        Worker.__init__(self)
        cpu_device_shims()
        init_gloo()
        self.config = config
        self.role = role
        assert role in ["actor", "rollout", "ref", "actor_rollout", "actor_rollout_ref"]
        self._is_actor = role in ["actor", "actor_rollout", "actor_rollout_ref"]
        self._is_rollout = role in ["rollout", "actor_rollout", "actor_rollout_ref"]
        self._is_ref = role in ["ref", "actor_rollout_ref"]
        world = dist.get_world_size()
        if self._is_actor:  # the original's normalisation: per-rank sizes, in samples
            self.config.actor.ppo_mini_batch_size *= self.config.rollout.n
            self.config.actor.ppo_mini_batch_size //= world
            assert self.config.actor.ppo_mini_batch_size > 0
            if self.config.actor.ppo_micro_batch_size is not None:
                self.config.actor.ppo_micro_batch_size //= world
                self.config.actor.ppo_micro_batch_size_per_gpu = self.config.actor.ppo_micro_batch_size
        if self._is_rollout and self.config.rollout.log_prob_micro_batch_size is not None:
            self.config.rollout.log_prob_micro_batch_size //= world
            self.config.rollout.log_prob_micro_batch_size_per_gpu = self.config.rollout.log_prob_micro_batch_size
        if self._is_ref and self.config.ref.log_prob_micro_batch_size is not None:
            self.config.ref.log_prob_micro_batch_size //= world
            self.config.ref.log_prob_micro_batch_size_per_gpu = self.config.ref.log_prob_micro_batch_size

    def _cpu_actor_config(self, section: DictConfig) -> DictConfig:
        cfg = OmegaConf.create(OmegaConf.to_container(section, resolve=True))
        with open_dict(cfg):
            cfg.use_remove_padding = False  # flash-attention varlen: GPU-only
            cfg.use_fused_kernels = False
            cfg.use_torch_compile = False
        return cfg

    def _sharded_model(self, local_path: str):
        from transformers import AutoModelForCausalLM
        from verl.utils.fsdp_utils import MixedPrecisionPolicy, apply_fsdp2

        model = AutoModelForCausalLM.from_pretrained(local_path, torch_dtype=torch.float32)
        if self.config.model.get("enable_gradient_checkpointing", False):
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        mp = MixedPrecisionPolicy(param_dtype=torch.float32, reduce_dtype=torch.float32, cast_forward_inputs=True)
        apply_fsdp2(model, {"mesh": cpu_mesh(), "mp_policy": mp}, self.config.actor.fsdp_config)
        return model

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def init_model(self):
        from verl.utils.torch_functional import get_constant_schedule_with_warmup, get_cosine_schedule_with_warmup
        from verl.workers.actor import DataParallelPPOActor
        from verl.workers.rollout.hf_rollout import HFRollout

        local_path = copy_to_local(self.config.model.path)
        self.tokenizer = hf_tokenizer(local_path)
        self.generation_config = get_generation_config(local_path)
        if self._is_actor or self._is_rollout:
            self.actor_module_fsdp = self._sharded_model(local_path)
        if self._is_actor:
            optim = self.config.actor.optim
            self.actor_optimizer = torch.optim.AdamW(
                self.actor_module_fsdp.parameters(),
                lr=optim.lr,
                betas=optim.get("betas", (0.9, 0.999)),
                weight_decay=optim.get("weight_decay", 1e-2),
            )
            total = optim.get("total_training_steps", 0)
            warmup = int(optim.get("lr_warmup_steps", -1))
            if warmup < 0:
                warmup = int(optim.get("lr_warmup_steps_ratio", 0.0) * total)
            if optim.get("warmup_style", "constant") == "constant":
                self.actor_lr_scheduler = get_constant_schedule_with_warmup(self.actor_optimizer, warmup)
            else:
                self.actor_lr_scheduler = get_cosine_schedule_with_warmup(
                    self.actor_optimizer,
                    warmup,
                    total,
                    min_lr_ratio=optim.get("min_lr_ratio", 0.0),
                    num_cycles=optim.get("num_cycles", 0.5),
                )
            self.actor = DataParallelPPOActor(
                config=self._cpu_actor_config(self.config.actor),
                actor_module=self.actor_module_fsdp,
                actor_optimizer=self.actor_optimizer,
            )
            self.checkpoint_manager = FSDPCheckpointManager(
                model=self.actor_module_fsdp,
                optimizer=self.actor_optimizer,
                lr_scheduler=self.actor_lr_scheduler,
                processing_class=self.tokenizer,
                checkpoint_contents=self.config.actor.checkpoint,
            )
        if self._is_rollout:
            self.rollout_copy = RolloutCopy(local_path)
            self.rollout = HFRollout(module=self.rollout_copy.model, config=self.config.rollout)
        if self._is_ref:
            self.ref_module_fsdp = self._sharded_model(local_path)
            self.ref_policy = DataParallelPPOActor(
                config=self._cpu_actor_config(self.config.ref), actor_module=self.ref_module_fsdp
            )

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def update_actor(self, data: DataProto):
        data = data.to("cpu")
        with Timer(name="update_policy", logger=None) as timer:
            metrics = self.actor.update_policy(data=data)
        metrics["perf/update_policy_s"] = timer.last
        metrics["perf/mfu/actor"] = 0.0
        metrics["perf/max_memory_allocated_gb"] = 0.0
        metrics["perf/max_memory_reserved_gb"] = 0.0
        metrics["perf/cpu_memory_used_gb"] = psutil.virtual_memory().used / (1024**3)
        metrics["actor/lr"] = self.actor_lr_scheduler.get_last_lr()[0]
        self.actor_lr_scheduler.step()
        return DataProto(meta_info={"metrics": metrics})

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def generate_sequences(self, prompts: DataProto):
        prompts = prompts.to("cpu")
        g = self.generation_config
        prompts.meta_info.update(
            eos_token_id=g.eos_token_id if g is not None else self.tokenizer.eos_token_id,
            pad_token_id=g.pad_token_id
            if g is not None and g.pad_token_id is not None
            else self.tokenizer.pad_token_id,
        )
        timing = {}
        with Timer(name="reshard", logger=None) as t:  # the sharding manager's job: the engine gets the new weights
            self.rollout_copy.load(full_state_dict(self.actor_module_fsdp))
        timing["reshard"] = t.last
        with Timer(name="generate_sequences", logger=None) as t:
            output = self.rollout.generate_sequences(prompts=prompts)
        timing["generate_sequences"] = t.last
        output.meta_info["timing"] = timing
        return output.to("cpu")

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def compute_log_prob(self, data: DataProto):
        data = data.to("cpu")
        data.meta_info["micro_batch_size"] = self.config.rollout.log_prob_micro_batch_size_per_gpu
        data.meta_info["max_token_len"] = self.config.rollout.log_prob_max_token_len_per_gpu
        data.meta_info["use_dynamic_bsz"] = self.config.rollout.log_prob_use_dynamic_bsz
        data.meta_info["temperature"] = self.config.rollout.temperature
        log_probs, entropys = self.actor.compute_log_prob(data=data, calculate_entropy=True)
        return DataProto.from_dict(
            tensors={"old_log_probs": log_probs, "entropys": entropys},
            meta_info={"temperature": self.config.rollout.temperature},
        )

    @register(dispatch_mode=Dispatch.DP_COMPUTE_PROTO)
    def compute_ref_log_prob(self, data: DataProto):
        assert self._is_ref
        data = data.to("cpu")
        data.meta_info["micro_batch_size"] = self.config.ref.log_prob_micro_batch_size_per_gpu
        data.meta_info["temperature"] = self.config.rollout.temperature
        data.meta_info["max_token_len"] = self.config.ref.log_prob_max_token_len_per_gpu
        data.meta_info["use_dynamic_bsz"] = self.config.ref.log_prob_use_dynamic_bsz
        log_probs, _ = self.ref_policy.compute_log_prob(data=data, calculate_entropy=False)
        return DataProto.from_dict(tensors={"ref_log_prob": log_probs})

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def save_checkpoint(self, local_path, hdfs_path=None, global_step=0, max_ckpt_to_keep=None):
        assert self._is_actor
        self.checkpoint_manager.save_checkpoint(
            local_path=local_path, hdfs_path=hdfs_path, global_step=global_step, max_ckpt_to_keep=max_ckpt_to_keep
        )
        dist.barrier()

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def load_checkpoint(self, local_path, hdfs_path=None, del_local_after_load=False):
        self.checkpoint_manager.load_checkpoint(
            local_path=local_path, hdfs_path=hdfs_path, del_local_after_load=del_local_after_load
        )

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def start_profile(self) -> None:
        pass

    @register(dispatch_mode=Dispatch.ONE_TO_ALL)
    def stop_profile(self) -> None:
        pass


class _NotStoodIn(Worker):
    def __init__(self, *args, **kwargs):
        raise NotImplementedError(
            f"the rehearsal's CPU checkout stands in for the actor/rollout worker only, not {type(self).__name__}"
        )


class CriticWorker(_NotStoodIn):
    """Not stood in: GRPO has no critic."""


class RewardModelWorker(_NotStoodIn):
    """Not stood in: knowrl's reward is a rule (`custom_reward_function`), not a model."""


AsyncActorRolloutRefWorker = ActorRolloutRefWorker
