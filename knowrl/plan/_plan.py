"""spec -> Plan: a DAG of jobs with ids, resources, artifacts and cost.

- `kp_select` when hints are computed rather than precomputed;
- `data` (NeMo-RL and verl): the training and validation sets rendered with
  their hints, in the backend's own record format;
- one `train` job per phase of the clip schedule, each resuming from the
  previous phase's last checkpoint in the same checkpoint directory;
- `export-<checkpoint>` (NeMo-RL and verl) per evaluated checkpoint: the
  backend's sharded checkpoint converted to a Hugging Face folder;
- one `eval` job per (checkpoint, benchmark, hint mode), one GPU (or one
  tensor-parallel group) each, packed onto the cluster; it loads the exported
  folder, never raw shards.
Paths are relative to the run directory; job ids are stable, so a re-plan of
the same spec yields the same jobs. The run id is the spec hash joined with the
fingerprints of the data and model the run reads: the same spec on changed
inputs is a new run.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import asdict, dataclass, field

from knowrl._errors import KnowrlError
from knowrl.plan._cost import Assumptions, eval_gpu_hours, selection_gpu_hours, train_gpu_hours


class PlanError(KnowrlError):
    exit_code = 2


@dataclass(frozen=True)
class Resources:
    nodes: int = 1
    gpus_per_node: int = 0
    cpus: int = 1

    @property
    def gpus(self) -> int:
        return self.nodes * self.gpus_per_node


@dataclass
class Job:
    id: str
    kind: str
    resources: Resources
    depends_on: list[str] = field(default_factory=list)
    inputs: dict[str, str] = field(default_factory=dict)
    outputs: dict[str, str] = field(default_factory=dict)
    params: dict = field(default_factory=dict)
    gpu_hours: float = 0.0

    @classmethod
    def from_dict(cls, raw: dict) -> Job:
        """A job back from `dataclasses.asdict` or `Plan.to_dict` (whose resources also carry `gpus`)."""
        r = raw["resources"]
        fields = {k: raw[k] for k in cls.__dataclass_fields__ if k in raw and k != "resources"}
        return cls(**fields, resources=Resources(r["nodes"], r["gpus_per_node"], r["cpus"]))


@dataclass
class Plan:
    run_id: str
    spec_hash: str
    backend: str
    jobs: list[Job]
    phases: list[dict]
    assumptions: dict
    cluster: dict
    inputs: dict = field(default_factory=dict)
    """Fingerprints of the data and model the run reads (`knowrl.plan._inputs`); part of the run id."""

    @classmethod
    def from_dict(cls, raw: dict) -> Plan:
        """A plan back from `to_dict` (the copy in a run's manifest)."""
        fields = {k: raw[k] for k in cls.__dataclass_fields__ if k != "jobs" and k in raw}
        return cls(**fields, jobs=[Job.from_dict(j) for j in raw["jobs"]])

    def job(self, job_id: str) -> Job:
        return next(j for j in self.jobs if j.id == job_id)

    @property
    def total_gpu_hours(self) -> float:
        return sum(j.gpu_hours for j in self.jobs)

    def to_dict(self) -> dict:
        out = asdict(self)
        for job, j in zip(out["jobs"], self.jobs, strict=True):
            job["resources"]["gpus"] = j.resources.gpus
            job["gpu_hours"] = round(j.gpu_hours, 2)
        out["total_gpu_hours"] = round(self.total_gpu_hours, 2)
        return out


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def eval_benchmarks(spec) -> list[tuple[str, int, int | None]]:
    """(name, samples, problems if known) per benchmark of the spec's suite."""
    from knowrl.eval._suites import resolve_suite

    suite = resolve_suite(
        spec.eval.suite, data=spec.eval.data, benchmarks=spec.eval.benchmarks, samples=spec.eval.samples
    )
    return [(b.name, b.samples, b.expected) for b in suite.benchmarks]


def plan(spec, assumptions: dict | None = None) -> Plan:
    """Resolve a validated spec into its job DAG; a plan that cannot fit the cluster is an error."""
    from knowrl.backends import get_backend
    from knowrl.plan._inputs import fingerprint_inputs, inputs_digest
    from knowrl.spec import spec_hash

    if spec.sweep is not None:
        raise PlanError("this spec declares a sweep; plan its points with `knowrl sweep SPEC --plan`")
    h = spec_hash(spec)
    r = spec.resources
    backend = get_backend(r.backend)
    problems = backend.check(spec)
    if problems:
        raise PlanError(
            f"the {r.backend} backend cannot run this spec: " + "; ".join(problems),
            hint="change resources.backend or the named settings",
        )
    a = Assumptions.for_gpu(r.gpu_type, **(assumptions or {}))
    gpu_job = Resources(1, max(1, spec.eval.tensor_parallel) if r.gpus_per_node else 0, r.cpus_per_job)
    if spec.eval.tensor_parallel > max(1, r.gpus_per_node) and r.gpus_per_node:
        raise PlanError(
            f"eval.tensor_parallel ({spec.eval.tensor_parallel}) exceeds resources.gpus_per_node "
            f"({r.gpus_per_node}): an eval worker must fit on one node"
        )
    jobs: list[Job] = []
    selection = None
    if spec.hints.source == "compute" and spec.hints.strategy != "none":
        selection = "kp_select/selections.jsonl"
        max_tokens = getattr(getattr(spec.hints, "sampling", None), "max_tokens", 0)
        jobs.append(
            Job(
                "kp_select",
                "kp_select",
                gpu_job,
                inputs={"data": "data/train"},
                outputs={"selections": selection},
                params={
                    "strategy": spec.hints.strategy,
                    "workers": max(1, r.nodes * r.gpus_per_node // max(1, gpu_job.gpus)),
                },
                gpu_hours=selection_gpu_hours(max_tokens, a) if r.gpus_per_node and max_tokens else 0.0,
            )
        )
    phases = []
    train_jobs: list[Job] = []
    ckpt = backend.checkpoint_dir
    if spec.data.train:
        first_deps = ["kp_select"] if selection else []
        files = backend.data_files(spec)
        if files:
            data_job = Job("data", "data", Resources(1, 0, r.cpus_per_job), first_deps, {}, files, {})
            jobs.append(data_job)
            first_deps = [data_job.id]
        for i, (start, end, bounds) in enumerate(spec.algorithm.phases(), 1):
            end = end if end is not None else _epoch_steps(spec, backend)
            deps = [train_jobs[-1].id] if train_jobs else first_deps
            inputs = {"train_data": files.get("train", "data/train"), "checkpoints": "checkpoints"}
            if train_jobs:
                inputs["resume_from"] = ckpt(start)
            job = Job(
                f"train-p{i}",
                "train",
                Resources(r.nodes, r.gpus_per_node, r.cpus_per_job),
                deps,
                inputs,
                {"checkpoint": ckpt(end), "metrics": f"train-p{i}/metrics.parquet"},
                {
                    "phase": i,
                    "start_step": start,
                    "end_step": end,
                    "clip_low": bounds.low,
                    "clip_high": bounds.high,
                    "clip_c": bounds.dual_c,
                },
                train_gpu_hours(spec, end - start, a) if r.gpus_per_node else 0.0,
            )
            train_jobs.append(job)
            phases.append({"phase": i, "steps": [start, end], "clip_low": bounds.low, "clip_high": bounds.high})
        jobs += train_jobs
    if spec.eval.enabled:
        benches = eval_benchmarks(spec)
        for ckpt in spec.eval.checkpoints:
            producer, model = _checkpoint(spec, ckpt, train_jobs, backend)
            if producer and backend.exports:
                export = Job(
                    f"export-{ckpt}",
                    "export",
                    Resources(1, 0, r.cpus_per_job),
                    [producer],
                    {"checkpoint": model},
                    {"model": f"models/{ckpt}"},
                    {"checkpoint": ckpt},
                )
                jobs.append(export)
                producer, model = export.id, export.outputs["model"]
            deps = [producer] if producer else []
            for bench, samples, n in benches:
                for mode in spec.eval.hint_modes:
                    jid = f"eval-{ckpt}-{_slug(bench)}-{_slug(mode.replace(':', '-'))}"
                    jobs.append(
                        Job(
                            jid,
                            "eval",
                            gpu_job,
                            list(deps),
                            {"model": model},
                            {"samples": f"eval/{ckpt}/samples/{_slug(bench)}/{_slug(mode)}.parquet"},
                            {"checkpoint": ckpt, "benchmark": bench, "hint_mode": mode, "samples": samples},
                            eval_gpu_hours(n or 100, samples, spec.eval.sampling.max_tokens, a) * gpu_job.gpus
                            if r.gpus_per_node
                            else 0.0,
                        )
                    )
    cluster = {"nodes": r.nodes, "gpus_per_node": r.gpus_per_node, "gpu_type": r.gpu_type, "backend": r.backend}
    inputs = fingerprint_inputs(spec)
    run_id = hashlib.sha256(f"{h}:{inputs_digest(inputs)}".encode()).hexdigest()[:12]
    return Plan(run_id, h, r.backend, jobs, phases, a.model_dump(), cluster, inputs)


def _epoch_steps(spec, backend) -> int:
    """The step that ends training given in `algorithm.total_epochs`: the backend's steps over the training set.

    Only a backend that can count its steps says so (`steps_for_epochs`); the
    others refuse `total_epochs` in their capabilities, before this is reached.
    The problems are counted here, so the plan (progress, checkpoints, eval of
    `final`) knows the last step and the trainer is given it.
    """
    from knowrl.data import load_problems

    a = spec.algorithm
    count = getattr(backend.module, "steps_for_epochs", None)
    if count is None:
        raise PlanError(
            f"the {backend.name} backend cannot count training steps from algorithm.total_epochs",
            hint="set algorithm.total_steps instead",
        )
    problems = sum(len(load_problems(s.source, s.format, limit=s.limit).problems) for s in spec.data.train)
    steps = count(spec, problems)
    if steps < 1:
        raise PlanError(
            f"algorithm.total_epochs={a.total_epochs} over {problems} training problems is no training step: an "
            f"epoch is the complete batches of algorithm.prompts_per_step={a.prompts_per_step} prompts",
            hint="lower algorithm.prompts_per_step, add training problems, or set algorithm.total_steps",
        )
    return steps


def _checkpoint(spec, ckpt, train_jobs: list[Job], backend) -> tuple[str | None, str]:
    """(the job that produces a checkpoint, its path) for `base`, `final` or a step number."""
    if ckpt == "base":
        return None, spec.model.path
    if not train_jobs:
        raise PlanError(
            f"eval.checkpoints asks for '{ckpt}' but the spec trains nothing (data.train is empty)",
            hint="evaluate `base` only, or add training data",
        )
    if ckpt == "final":
        last = train_jobs[-1]
        return last.id, last.outputs["checkpoint"]
    every = spec.algorithm.save_every
    for job in train_jobs:
        if job.params["start_step"] < ckpt <= job.params["end_step"]:
            end = job.params["end_step"]
            if ckpt % every and ckpt != end:
                raise PlanError(
                    f"eval checkpoint {ckpt} is never saved (save_every is {every})",
                    hint=f"use a multiple of {every} or a phase end",
                )
            keep = spec.algorithm.keep_checkpoints
            if ckpt != end and backend.exports and (end - ckpt) // every >= keep:
                raise PlanError(
                    f"eval checkpoint {ckpt} is deleted before it can be exported: {(end - ckpt) // every} newer "
                    f"checkpoints follow it in its phase and algorithm.keep_checkpoints is {keep}",
                    hint=f"set algorithm.keep_checkpoints to at least {(end - ckpt) // every + 1}, or add a clip "
                    f"schedule breakpoint at step {ckpt}",
                )
            return job.id, backend.checkpoint_dir(ckpt)
    raise PlanError(f"eval checkpoint {ckpt} is outside training (0..{train_jobs[-1].params['end_step']})")
