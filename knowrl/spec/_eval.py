"""What is evaluated, with which hints, and how it is sampled."""

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, field_validator, model_validator

from knowrl.spec._base import GenerationSampling, PositiveInt, SpecModel, raise_issues
from knowrl.spec._data import DatasetSource
from knowrl.spec._hints import STRATEGIES

KNOWRL8_SOURCE = "hf://HasuerYu/KnowRL-KP-Annotations"
KNOWRL8: dict[str, tuple[int, int]] = {
    # benchmark: (problems, samples per problem)
    "AIME24": (30, 32),
    "AIME25": (30, 32),
    "BRUMO25": (30, 32),
    "HMMT25": (30, 32),
    "AMC23": (40, 32),
    "CMIMC25": (40, 32),
    "MATH-500": (500, 8),
    "OlympiadBench": (674, 8),
}
"""The paper's eight benchmarks, 1,374 problems in all."""
BUILTIN_SUITES = {"knowrl8": KNOWRL8}

_HINT_MODE = re.compile(r"^(none|css|cbrs|all|select:(?P<strategy>[a-z_]+))$")


def check_hint_mode(mode: str) -> str:
    m = _HINT_MODE.match(mode)
    if not m or (m["strategy"] and m["strategy"] not in STRATEGIES):
        raise ValueError(
            f"unknown hint mode {mode!r}; use none, css, cbrs, all or select:<strategy> "
            f"with a strategy in {', '.join(STRATEGIES)}"
        )
    return mode


HintMode = Annotated[
    str, AfterValidator(check_hint_mode), Field(json_schema_extra={"pattern": r"^(none|css|cbrs|all|select:[a-z_]+)$"})
]


class BenchmarkSpec(DatasetSource):
    """One benchmark of a user-defined suite."""

    name: str = Field(min_length=1)  # type: ignore[assignment]
    """Benchmark name as shown in tables."""
    samples: PositiveInt = 32
    """Samples per problem."""


class EvalSpec(SpecModel):
    """Evaluation: suites x hint modes x checkpoints."""

    enabled: bool = True
    """Evaluate at all."""
    suite: str | None = "knowrl8"
    """A built-in suite (`knowrl8`) or a suite YAML file; null when `benchmarks` lists the suite inline."""
    benchmarks: list[BenchmarkSpec] = Field(default_factory=list)
    """An inline suite, instead of `suite`."""
    data: str | None = None
    """Local folder in the `knowrl-annotations` format to read a built-in suite from instead of the hub."""
    hint_modes: list[HintMode] = Field(default_factory=lambda: ["none"], min_length=1)
    """Hint modes: none, css, cbrs (precomputed), all, or select:<strategy> (oracle-assisted, run at test time)."""
    sampling: GenerationSampling = Field(default_factory=GenerationSampling)
    """Sampling for every benchmark."""
    samples: dict[str, PositiveInt] = Field(default_factory=dict)
    """Per-benchmark samples-per-problem overrides, e.g. {AIME24: 64}."""
    checkpoints: list[PositiveInt | Literal["base", "final"]] = Field(default_factory=lambda: ["final"], min_length=1)
    """Checkpoints to evaluate: `base` (before training), `final`, or step numbers."""
    generator: Literal["vllm", "transformers", "openai"] = "vllm"
    """Generation engine."""
    server_url: str | None = None
    """Base URL of an OpenAI-compatible server when `generator` is `openai`."""
    tensor_parallel: PositiveInt = 1
    """GPUs per eval worker (vLLM tensor parallelism)."""
    limit: PositiveInt | None = None
    """Evaluate only the first K problems of each benchmark (for quick runs)."""

    @field_validator("hint_modes")
    @classmethod
    def _modes(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError(f"hint modes repeat: {v}")
        return v

    @model_validator(mode="after")
    def _cross_field(self) -> "EvalSpec":
        issues: list[tuple[str, str]] = []
        if self.suite and self.benchmarks:
            issues.append(("benchmarks", "give either `suite` or inline `benchmarks`, not both (set suite: null)"))
        if not self.suite and not self.benchmarks and self.enabled:
            issues.append(("suite", "no suite and no benchmarks to evaluate"))
        if self.generator == "openai" and not self.server_url:
            issues.append(("server_url", "the openai generator needs `server_url`, e.g. http://127.0.0.1:8000/v1"))
        if self.suite and self.suite not in BUILTIN_SUITES and not self.suite.endswith((".yaml", ".yml")):
            builtin = ", ".join(BUILTIN_SUITES)
            issues.append(("suite", f"unknown suite {self.suite!r}; use {builtin} or a suite .yaml file"))
        known = self.benchmark_names()
        if known is not None:
            for name in self.samples:
                if name not in known:
                    issues.append((f"samples.{name}", f"unknown benchmark; the suite has {', '.join(known)}"))
        raise_issues(issues)
        return self

    def benchmark_names(self) -> list[str] | None:
        """Names of the benchmarks evaluated, or None when the suite is a file read later."""
        if self.benchmarks:
            return [b.name for b in self.benchmarks]
        if self.suite in BUILTIN_SUITES:
            return list(BUILTIN_SUITES[self.suite])
        return None


class SuiteSpec(SpecModel):
    """A user-defined evaluation suite (YAML): its benchmarks and, optionally, their sampling."""

    name: str = Field(min_length=1)
    """Suite name as shown in tables."""
    benchmarks: list[BenchmarkSpec] = Field(min_length=1)
    """The benchmarks, each with its source, format and samples per problem."""
    sampling: GenerationSampling | None = None
    """Sampling for the whole suite (default: the experiment's `eval.sampling`)."""
