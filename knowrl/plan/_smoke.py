"""`--smoke`: the same spec shrunk by one declared profile, to find a broken setup in minutes, not after the queue.

Everything that decides *whether* a run works is kept -- backend and release,
model, data sources, hints, reward, the algorithm and its clip schedule's
phases, checkpoint hand-over between phases, export and eval of the same
checkpoints and hint modes -- and only sizes shrink: phase 1 trains 2 steps
and each later phase 1 step (each resuming the previous phase's checkpoint
through the backend's own resume), small batches and responses, one node, a
few problems per validation set and eval benchmark, few samples. The overrides
are ordinary dotlist overrides, so the smoke run is a run of its own (its own
spec hash and run id) that `knowrl plan --smoke` shows, and an override the
user gives on the command line wins over the profile's.
"""

from __future__ import annotations

PROMPTS, SAMPLES, RESPONSE_TOKENS, TRAIN_PROBLEMS, EVAL_PROBLEMS, EVAL_SAMPLES = 8, 4, 1024, 64, 4, 2


def smoke_overrides(spec) -> list[str]:
    """The profile's overrides for this spec (`key=value`, values in YAML)."""
    from knowrl.plan._plan import eval_benchmarks

    a = spec.algorithm
    out = [f"name={spec.name}-smoke", f"tags={[*spec.tags, 'smoke']}".replace("'", "")]
    out += [f"algorithm.clip_schedule.{i}.step={2 + i}" for i in range(len(a.clip_schedule))]
    out += ["algorithm.total_steps=" + str(2 + len(a.clip_schedule)), "algorithm.total_epochs=null"]
    prompts = min(a.prompts_per_step, PROMPTS)
    out += [
        f"algorithm.prompts_per_step={prompts}",
        f"algorithm.mini_batch_size={min(a.mini_batch_size, prompts)}",
        f"algorithm.samples_per_prompt={min(a.samples_per_prompt, SAMPLES)}",
        f"algorithm.max_response_length={min(a.max_response_length, RESPONSE_TOKENS)}",
        f"algorithm.validation.n={min(a.validation.n, EVAL_SAMPLES)}",
        "algorithm.save_every=1",
        "algorithm.validate_every=2",
        "resources.nodes=1",
    ]
    if a.generation_batch_size is not None:
        out.append(f"algorithm.generation_batch_size={min(a.generation_batch_size, 2 * prompts)}")
    if a.overlong.enabled:
        out.append(f"algorithm.overlong.buffer_length={min(a.overlong.buffer_length, RESPONSE_TOKENS // 4)}")
    out += [
        f"data.train.{i}.limit={min(s.limit or TRAIN_PROBLEMS, TRAIN_PROBLEMS)}" for i, s in enumerate(spec.data.train)
    ]
    out += [
        f"data.validation.{i}.limit={min(s.limit or EVAL_PROBLEMS, EVAL_PROBLEMS)}"
        for i, s in enumerate(spec.data.validation)
    ]
    if spec.eval.enabled:
        out += [
            f"eval.limit={min(spec.eval.limit or EVAL_PROBLEMS, EVAL_PROBLEMS)}",
            f"eval.sampling.max_tokens={min(spec.eval.sampling.max_tokens, RESPONSE_TOKENS)}",
        ]
        out += [f"eval.samples.{name}={min(n, EVAL_SAMPLES)}" for name, n, _ in eval_benchmarks(spec)]
    return out


def _key(override: str) -> str:
    return override.split("=", 1)[0].strip().lstrip("+~")


def load_smoke(path, overrides=()):
    """(the smoke spec, the profile's overrides in force): the user's own overrides win over the profile's."""
    from knowrl.spec import load_spec

    user = list(overrides)
    mine = {_key(o) for o in user}
    profile = [o for o in smoke_overrides(load_spec(path, user)) if _key(o) not in mine]
    return load_spec(path, [*profile, *user]), profile
