"""Answer extraction and math equivalence: the reward and the eval metric stand on it."""

from knowrl.grading._extract import last_boxed, normalize, split_reasoning, strip_boxed
from knowrl.grading._grader import Grader, Reason, Verdict, grade_responses

__all__ = [
    "Grader",
    "Reason",
    "Verdict",
    "grade_responses",
    "last_boxed",
    "normalize",
    "split_reasoning",
    "strip_boxed",
]
