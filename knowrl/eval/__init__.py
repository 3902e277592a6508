"""Evaluation: suites x hint modes -> samples -> metrics (avg@N, pass@k, maj@N, sparsity)."""

from knowrl.eval._metrics import (
    Sample,
    correct_count_distribution,
    ks_for,
    majority_correct,
    pass_at_k,
    shard_metrics,
    suite_means,
)
from knowrl.eval._report import print_table, table_rows
from knowrl.eval._runner import AVG, EvalRequest, EvalResult, is_oracle, run_eval, sample_seed
from knowrl.eval._suites import Benchmark, Suite, builtin_suite, load_benchmarks, load_suite, resolve_suite

__all__ = [
    "AVG",
    "Benchmark",
    "EvalRequest",
    "EvalResult",
    "Sample",
    "Suite",
    "builtin_suite",
    "correct_count_distribution",
    "is_oracle",
    "ks_for",
    "load_benchmarks",
    "load_suite",
    "majority_correct",
    "pass_at_k",
    "print_table",
    "resolve_suite",
    "run_eval",
    "sample_seed",
    "shard_metrics",
    "suite_means",
    "table_rows",
]
