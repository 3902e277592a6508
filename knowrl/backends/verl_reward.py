"""knowrl's reward as a verl `custom_reward_function`: the paper's rule, graded by knowrl.

verl calls `compute_score(data_source, solution_str, ground_truth, extra_info)`
in its reward workers; the grader (and its math-verify worker pool) is built
once per worker process. `KNOWRL_REQUIRE_THINK_CLOSE` and
`KNOWRL_GRADING_TIMEOUT` carry the spec's reward settings.
"""

from __future__ import annotations

import functools
import os


@functools.cache
def _grader():
    from knowrl.grading import Grader

    return Grader(
        require_think_close=os.environ.get("KNOWRL_REQUIRE_THINK_CLOSE", "True") == "True",
        timeout_s=float(os.environ.get("KNOWRL_GRADING_TIMEOUT", "5")),
    )


def compute_score(data_source, solution_str, ground_truth, extra_info=None) -> dict:
    verdict = _grader().grade(str(ground_truth), solution_str)
    return {"score": 1.0 if verdict.correct else 0.0, "acc": verdict.correct, "reason": verdict.reason}
