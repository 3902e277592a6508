"""Typed experiment specs: models, loading with `extends`/overrides, identity and schema."""

from knowrl.spec._algorithm import AlgorithmSpec, ClipBounds, ClipChange
from knowrl.spec._data import DatasetSource, DataSpec, ModelSpec, parse_hf_uri
from knowrl.spec._eval import BUILTIN_SUITES, KNOWRL8, KNOWRL8_SOURCE, BenchmarkSpec, EvalSpec
from knowrl.spec._experiment import ExperimentSpec, ResourcesSpec, SweepSpec
from knowrl.spec._hash import canonical_json, spec_hash
from knowrl.spec._hints import STRATEGIES, HintsSpec
from knowrl.spec._load import load_data, load_spec, validate
from knowrl.spec._reward import RewardSpec
from knowrl.spec._schema import json_schema, schema_text, write_schema

__all__ = [
    "BUILTIN_SUITES",
    "KNOWRL8",
    "KNOWRL8_SOURCE",
    "STRATEGIES",
    "AlgorithmSpec",
    "BenchmarkSpec",
    "ClipBounds",
    "ClipChange",
    "DataSpec",
    "DatasetSource",
    "EvalSpec",
    "ExperimentSpec",
    "HintsSpec",
    "ModelSpec",
    "ResourcesSpec",
    "RewardSpec",
    "SweepSpec",
    "canonical_json",
    "json_schema",
    "load_data",
    "load_spec",
    "parse_hf_uri",
    "schema_text",
    "spec_hash",
    "validate",
    "write_schema",
]
