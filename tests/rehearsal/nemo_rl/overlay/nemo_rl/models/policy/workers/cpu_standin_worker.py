"""CPU stand-ins for NeMo-RL's GPU workers, overlaid on NeMo-RL v0.7.0 for knowrl's rehearsal.

Not part of NeMo-RL: knowrl's tests/rehearsal/nemo_rl/build.sh copies this
file into a checkout of NeMo-RL's real source (README.md there says which
files it replaces). Two Ray actors do, on the CPU and in float32, the work
NeMo-RL's DTensor policy workers and vLLM workers do on GPUs:

- `CpuPolicyWorker`: a Hugging Face causal LM with the config's optimizer
  and scheduler (built as NeMo-RL's DTensor worker builds them), log-probs,
  and a training step that feeds the next-token log-probs to the loss
  function object `grpo_train` passes in (NeMo-RL's ClippedPGLossFn),
  normalised by the global valid sequences/tokens as the real worker does;
  checkpoints are DCP (torch.distributed.checkpoint) in the DTensor v2
  worker's layout (`weights/model`, `optimizer/optim`), so NeMo-RL's
  converter and resume read them.
- `CpuGenerationWorker`: sampling with transformers' `generate`, one prompt
  at a time, returning NeMo-RL's GenerationOutputSpec; its weights come from
  the policy through `REFIT` (the Ray object store), as vLLM's come through
  ZMQ/NCCL refits.

One worker of each does the work of the whole data-parallel group; the
cluster's placement groups (NeMo-RL's RayVirtualCluster) are still created
for every bundle, and the workers run inside bundle 0.
"""

from __future__ import annotations

import os
from typing import Any

import ray
import torch
from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

REFIT: dict[str, Any] = {}
"""In the driver: the ObjectRef of the policy's last published weights, taken by the generation's refit."""


def bundle_zero(cluster) -> dict:
    """Ray options that put a worker in bundle 0 of the cluster's first placement group, sharing it as colocated
    worker groups do (1 / max_colocated_worker_groups of the bundle's GPU)."""
    pg = cluster.get_placement_groups()[0]  # NeMo-RL's own RayVirtualCluster reserves every bundle here
    share = 1.0 / max(1, cluster.max_colocated_worker_groups)
    return {
        "num_cpus": share,
        "num_gpus": share if cluster.use_gpus else 0,
        "scheduling_strategy": PlacementGroupSchedulingStrategy(placement_group=pg, placement_group_bundle_index=0),
    }


def _model(name: str, *, weights: bool):
    from transformers import AutoConfig, AutoModelForCausalLM

    if weights:
        return AutoModelForCausalLM.from_pretrained(name, dtype=torch.float32)
    return AutoModelForCausalLM.from_config(AutoConfig.from_pretrained(name), dtype=torch.float32)


def _next_token_logprobs(input_ids: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """NeMo-RL's `get_next_token_logprobs_from_logits` without model parallelism (log-softmax of each position's
    logits, gathered at the next token; [B, S-1]) -- whose non-parallel branch moves the tokens to CUDA."""
    logprobs = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    return logprobs.gather(-1, input_ids[:, 1:].unsqueeze(-1)).squeeze(-1)


def _attention_mask(input_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    return (torch.arange(input_ids.shape[1])[None, :] < lengths[:, None]).long()


def _placement() -> tuple[str, list]:
    return ray.util.get_node_ip_address(), [str(g) for g in ray.get_gpu_ids()]


@ray.remote
class CpuPolicyWorker:
    def __init__(self, cfg: dict, weights_path: str | None, optimizer_path: str | None, init_optimizer: bool):
        from hydra.utils import get_class

        torch.manual_seed(0)
        self.cfg = cfg
        self.model = _model(cfg["model_name"], weights=True)
        if weights_path:  # resume: NeMo-RL's CheckpointManager.get_resume_paths gave step_N/policy/{weights,optimizer}
            self._load_weights(weights_path)
        self.optimizer = (
            get_class(cfg["optimizer"]["name"])(self.model.parameters(), **cfg["optimizer"]["kwargs"])
            if init_optimizer
            else None
        )
        self.scheduler = None
        if self.optimizer is not None:
            scheds, milestones = [], []
            for s in cfg.get("scheduler") or []:
                if "name" in s:
                    scheds.append(get_class(s["name"])(self.optimizer, **s["kwargs"]))
                else:
                    milestones = s["milestones"]
            self.scheduler = (
                torch.optim.lr_scheduler.SequentialLR(self.optimizer, scheds, milestones)
                if scheds
                else torch.optim.lr_scheduler.LambdaLR(self.optimizer, lr_lambda=lambda _: 1)
            )
            if optimizer_path:
                self._load_optimizer(optimizer_path)

    def placement(self) -> tuple[str, list]:
        return _placement()

    def refit_info(self) -> dict:
        return {k: (tuple(v.shape), str(v.dtype)) for k, v in self.model.state_dict().items()}

    def weights(self) -> dict:
        return {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    def get_logprobs(self, data, micro_batch_size: int) -> torch.Tensor:
        """Log-prob of token i at position i (0 at position 0 and on padding), as NeMo-RL's workers return."""
        self.model.eval()
        out = torch.zeros(data["input_ids"].shape, dtype=torch.float32)
        with torch.no_grad():
            for start in range(0, data.size, micro_batch_size):
                ids = data["input_ids"][start : start + micro_batch_size]
                lengths = data["input_lengths"][start : start + micro_batch_size]
                mask = _attention_mask(ids, lengths)
                logits = self.model(input_ids=ids, attention_mask=mask).logits
                lp = _next_token_logprobs(ids, logits)
                out[start : start + len(ids), 1:] = lp * mask[:, 1:]
        return out

    def train(self, data, loss_fn, eval_mode: bool, gbs: int, mbs: int) -> dict:
        """One optimizer step per global batch of `gbs` sequences, micro-batches of `mbs`, then one scheduler step."""
        from nemo_rl.algorithms.loss.interfaces import LossInputType

        self.model.train(not eval_mode)
        losses, all_mb_metrics, grad_norm = [], [], None
        for gb in range(data.size // gbs):
            batch = data.get_batch(batch_idx=gb, batch_size=gbs)
            valid_seqs = torch.sum(batch["sample_mask"])
            valid_toks = torch.sum(batch["token_mask"][:, 1:] * batch["sample_mask"].unsqueeze(-1))
            if not eval_mode:
                self.optimizer.zero_grad()
            mb_losses = []
            for start in range(0, batch.size, mbs):
                mb = batch.slice(start, min(start + mbs, batch.size))
                with torch.set_grad_enabled(not eval_mode):
                    logits = self.model(
                        input_ids=mb["input_ids"], attention_mask=_attention_mask(mb["input_ids"], mb["input_lengths"])
                    ).logits
                    if loss_fn.input_type == LossInputType.LOGPROB:  # NeMo-RL's prepare_loss_input, on the CPU
                        loss_input = {"next_token_logprobs": _next_token_logprobs(mb["input_ids"], logits)}
                    else:
                        loss_input = {"logits": logits}
                    loss, metrics = loss_fn(
                        data=mb, global_valid_seqs=valid_seqs, global_valid_toks=valid_toks, **loss_input
                    )
                    if not eval_mode:
                        loss.backward()
                metrics["lr"] = self.optimizer.param_groups[0]["lr"] if self.optimizer else 0.0
                metrics["global_valid_seqs"] = valid_seqs.item()
                metrics["global_valid_toks"] = valid_toks.item()
                if metrics["num_valid_samples"] > 0:
                    mb_losses.append(loss.item())
                    all_mb_metrics.append(metrics)
            if not eval_mode:
                norm = self.cfg.get("max_grad_norm") or float("inf")
                grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), norm).detach().float()
                self.optimizer.step()
            losses.append(sum(mb_losses))
        if not eval_mode:
            self.optimizer.zero_grad()
            self.scheduler.step()
        merged: dict[str, list] = {}
        for m in all_mb_metrics:
            for k, v in m.items():
                merged.setdefault(k, []).append(v)
        return {"global_loss": torch.tensor(losses), "grad_norm": grad_norm, "all_mb_metrics": merged}

    def save(self, weights_path: str, optimizer_path: str | None, tokenizer_path: str | None) -> None:
        import torch.distributed.checkpoint as dcp
        from nemo_rl.utils.native_checkpoint import OptimizerState

        dcp.save({k: v.detach() for k, v in self.model.state_dict().items()}, checkpoint_id=f"{weights_path}/model")
        if optimizer_path and self.optimizer is not None:
            state = {"optim": OptimizerState(self.model, self.optimizer, self.scheduler)}
            dcp.save(state, checkpoint_id=f"{optimizer_path}/optim")
        if tokenizer_path:
            from transformers import AutoTokenizer

            AutoTokenizer.from_pretrained(self.cfg["tokenizer"]["name"]).save_pretrained(tokenizer_path)

    def _load_weights(self, weights_path: str) -> None:
        import torch.distributed.checkpoint as dcp

        state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        dcp.load(state, checkpoint_id=os.path.join(weights_path, "model"))
        self.model.load_state_dict(state)
        print(f"[stand-in] policy weights loaded from {weights_path}/model", flush=True)

    def _load_optimizer(self, optimizer_path: str) -> None:
        import torch.distributed.checkpoint as dcp
        from nemo_rl.utils.native_checkpoint import OptimizerState

        state = {"optim": OptimizerState(self.model, self.optimizer, self.scheduler)}
        dcp.load(state, checkpoint_id=f"{optimizer_path}/optim")
        print(f"[stand-in] optimizer and scheduler loaded from {optimizer_path}/optim", flush=True)


@ray.remote
class CpuGenerationWorker:
    def __init__(self, cfg: dict, seed: int):
        # vLLM starts from dummy weights (load_format "dummy") and gets the policy's with the first refit.
        dummy = cfg.get("vllm_cfg", {}).get("load_format", "dummy") == "dummy"
        self.cfg, self.seed, self.calls = cfg, seed, 0
        self.model = _model(cfg["model_name"], weights=not dummy).eval()

    def placement(self) -> tuple[str, list]:
        return _placement()

    def load_weights(self, state: dict) -> bool:
        self.model.load_state_dict(state)
        return True

    def generate(self, data, greedy: bool):
        """NeMo-RL's GenerationOutputSpec: right-padded input + response, per-token log-probs, truncation."""
        from nemo_rl.distributed.batched_data_dict import BatchedDataDict

        cfg = self.cfg
        pad = cfg["_pad_token_id"]
        stop = list(cfg.get("stop_token_ids") or [])
        max_len = cfg.get("vllm_cfg", {}).get("max_model_len") or 10**9
        self.calls += 1
        torch.manual_seed(self.seed * 1_000_003 + self.calls)
        outs = []
        with torch.no_grad():
            for i in range(data.size):
                n = int(data["input_lengths"][i])
                prompt = data["input_ids"][i, :n][None, :]
                budget = max(0, min(cfg["max_new_tokens"], max_len - n))
                sampling = {} if greedy else {"temperature": cfg["temperature"], "top_p": cfg["top_p"]}
                if not greedy and cfg.get("top_k"):
                    sampling["top_k"] = cfg["top_k"]
                gen = self.model.generate(
                    prompt, attention_mask=torch.ones_like(prompt), do_sample=not greedy, max_new_tokens=budget,
                    eos_token_id=stop or None, pad_token_id=pad, **sampling,
                )[0, n:]  # fmt: skip
                if stop and any(t in stop for t in gen.tolist()):
                    gen = gen[: next(j for j, t in enumerate(gen.tolist()) if t in stop) + 1]
                outs.append((n, gen))
        width = data["input_ids"].shape[1] + max((len(g) for _, g in outs), default=0)
        output_ids = torch.full((data.size, width), pad, dtype=data["input_ids"].dtype)
        logprobs = torch.zeros((data.size, width), dtype=torch.float32)
        for i, (n, gen) in enumerate(outs):
            output_ids[i, :n] = data["input_ids"][i, :n]
            output_ids[i, n : n + len(gen)] = gen
            if len(gen):  # the sampled tokens' log-probs under the sampling temperature
                with torch.no_grad():
                    logits = self.model(input_ids=output_ids[i : i + 1, : n + len(gen)]).logits[0, n - 1 : -1]
                t = 1.0 if greedy else float(cfg["temperature"]) or 1.0
                logprobs[i, n : n + len(gen)] = torch.log_softmax(logits / t, -1).gather(-1, gen[:, None])[:, 0]
        lengths = [len(g) for _, g in outs]
        return BatchedDataDict(
            {
                "output_ids": output_ids,
                "logprobs": logprobs,
                "generation_lengths": torch.tensor(lengths, dtype=torch.long),
                "unpadded_sequence_lengths": torch.tensor([n + k for (n, _), k in zip(outs, lengths, strict=True)]),
                "truncated": torch.tensor([not (len(g) and int(g[-1]) in stop) for _, g in outs], dtype=torch.bool),
            }
        )
