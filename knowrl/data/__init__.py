"""Datasets: sources, the published KnowRL record formats, and the `Problem` type."""

from knowrl.data._formats import FORMATS, RecordError, detect_format, read_record
from knowrl.data._inspect import DataStats, inspect_result
from knowrl.data._problem import Problem, canonical_benchmark, content_id
from knowrl.data._sources import DataError, LoadResult, iter_records, load_problems
from knowrl.data._synthetic import counting_problems

__all__ = [
    "FORMATS",
    "DataError",
    "DataStats",
    "LoadResult",
    "Problem",
    "RecordError",
    "canonical_benchmark",
    "content_id",
    "counting_problems",
    "detect_format",
    "inspect_result",
    "iter_records",
    "load_problems",
    "read_record",
]
