"""knowrl's reward as a NeMo-RL environment: the paper's rule, graded by knowrl, inside NeMo-RL's GRPO loop.

NeMo-RL's own math environment grades the whole text and never requires
`</think>`; this one gives each response knowrl's `Grader` verdict (the last
box after the last `</think>`, math-verify on it), the same verdict knowrl's
eval and the verl reward give. It follows `EnvironmentInterface` of the
release in `nemo_rl_v0.7.0.yaml` (`environment`): `step(message_logs,
metadata)` with `metadata[i]["ground_truth"]`, returning an
`EnvironmentReturn`. `nemo_rl_launch` registers it; the compiled config selects
it with `data.default.env_name: knowrl` and configures it under `env.knowrl`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

try:  # inside NeMo-RL: its own types, so NeMo-RL's isinstance checks and field access hold
    from nemo_rl.environments.interfaces import EnvironmentInterface, EnvironmentReturn
except ImportError:  # elsewhere (knowrl's tests): the same fields, in the same order

    class EnvironmentReturn(NamedTuple):  # type: ignore[no-redef]
        observations: list
        metadata: list
        next_stop_strings: list
        rewards: Any
        terminateds: Any
        answers: list | None

    EnvironmentInterface = object  # type: ignore[assignment,misc]


class KnowrlEnvironment(EnvironmentInterface):  # type: ignore[misc,valid-type]
    def __init__(self, cfg: dict) -> None:
        from knowrl.grading import Grader

        self.cfg = dict(cfg)
        self.grader = Grader(
            require_think_close=bool(cfg.get("require_think_close", True)),
            timeout_s=float(cfg.get("timeout_s", 5.0)),
            workers=int(cfg.get("num_workers", 8)),
        )

    def step(self, message_log_batch: list, metadata: list[dict], return_extracted_answer: bool = False):
        import torch

        responses = ["".join(str(m["content"]) for m in log if m["role"] == "assistant") for log in message_log_batch]
        verdicts = self.grader.grade_many((str(m["ground_truth"]), r) for m, r in zip(metadata, responses, strict=True))
        rewards = torch.tensor([1.0 if v.correct else 0.0 for v in verdicts])
        answers = [v.answer for v in verdicts]
        return EnvironmentReturn(
            observations=[
                {"role": "environment", "content": f"Environment: {'correct' if v.correct else 'incorrect'}"}
                for v in verdicts
            ],
            metadata=[{**m, "extracted_answer": a} for m, a in zip(metadata, answers, strict=True)],
            next_stop_strings=[None] * len(verdicts),
            rewards=rewards,
            terminateds=torch.ones_like(rewards),
            answers=answers if return_extracted_answer else None,
        )

    def global_post_process_and_metrics(self, batch):
        rewards = batch["rewards"] if batch["rewards"].ndim == 1 else batch["rewards"][:, 0]
        metrics = {"accuracy": rewards.float().mean().item()}
        if "is_end" in batch:
            metrics["fraction_of_samples_properly_ended"] = batch["is_end"].float().mean().item()
        if "generation_lengths" in batch and "prompt_lengths" in batch:
            metrics["generation_lengths"] = (
                (batch["generation_lengths"] - batch["prompt_lengths"]).float().mean().item()
            )
        return batch, metrics

    def shutdown(self) -> None:
        self.grader.close()


try:
    import ray

    KnowrlMathEnvironment = ray.remote(max_restarts=-1, max_task_retries=-1)(KnowrlEnvironment)
    """The Ray actor NeMo-RL starts (`nemo_rl_launch.ACTOR`)."""
except ImportError:  # knowrl without the `ray` extra: the plain class is still testable
    pass
