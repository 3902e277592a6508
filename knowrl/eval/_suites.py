"""Evaluation suites: the built-in knowrl8 and user-defined ones, resolved into problems."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from knowrl._errors import KnowrlError, UsageError
from knowrl.data import Problem, load_problems


@dataclass(frozen=True)
class Benchmark:
    name: str
    source: str
    format: str = "auto"
    samples: int = 32
    expected: int | None = None
    """Problems the benchmark is published with (checked, not enforced, when loading)."""


@dataclass(frozen=True)
class Suite:
    name: str
    benchmarks: tuple[Benchmark, ...]

    def subset(self, names: list[str]) -> Suite:
        """Only the named benchmarks (an explicit choice; unknown names are an error)."""
        have = [b.name for b in self.benchmarks]
        unknown = [n for n in names if n not in have]
        if unknown:
            raise UsageError(
                f"suite {self.name} has no benchmark {', '.join(unknown)}", hint=f"it has {', '.join(have)}"
            )
        return replace(
            self,
            name=f"{self.name}[{','.join(names)}]",
            benchmarks=tuple(b for b in self.benchmarks if b.name in names),
        )


def builtin_suite(name: str, data: str | None = None) -> Suite:
    """A built-in suite, read from the hub or from a local folder in the `knowrl-annotations` format."""
    from knowrl.spec import BUILTIN_SUITES, KNOWRL8_SOURCE

    if name not in BUILTIN_SUITES:
        raise UsageError(f"unknown suite '{name}'", hint=f"use {', '.join(BUILTIN_SUITES)} or a suite .yaml file")
    source = data or KNOWRL8_SOURCE
    return Suite(
        name,
        tuple(
            Benchmark(b, source, "knowrl-annotations", samples, expected)
            for b, (expected, samples) in BUILTIN_SUITES[name].items()
        ),
    )


def load_suite(path: str | Path) -> Suite:
    """A suite YAML file (validated like a spec, with located errors)."""
    from knowrl.spec._eval import SuiteSpec
    from knowrl.spec._load import load_data_file

    spec = load_data_file(Path(path), SuiteSpec)
    return Suite(spec.name, tuple(Benchmark(b.name, b.source, b.format, b.samples) for b in spec.benchmarks))


def resolve_suite(
    suite: str | None,
    *,
    data: str | None = None,
    benchmarks=(),
    samples: dict[str, int] | None = None,
    override_samples: int | None = None,
) -> Suite:
    """The suite an eval spec or command line names, with per-benchmark sample overrides applied."""
    if benchmarks:
        s = Suite("inline", tuple(Benchmark(b.name, b.source, b.format, b.samples) for b in benchmarks))
    elif suite and suite.endswith((".yaml", ".yml")):
        s = load_suite(suite)
    elif suite:
        s = builtin_suite(suite, data)
    else:
        raise UsageError("no suite to evaluate", hint="name a suite (knowrl8) or list benchmarks")
    samples = samples or {}
    return replace(
        s,
        benchmarks=tuple(replace(b, samples=override_samples or samples.get(b.name, b.samples)) for b in s.benchmarks),
    )


def load_benchmarks(suite: Suite, limit: int | None = None) -> dict[str, list[Problem]]:
    """Problems per benchmark; every benchmark must have problems (none is silently skipped)."""
    by_source: dict[tuple[str, str], list[Problem]] = {}
    out: dict[str, list[Problem]] = {}
    for b in suite.benchmarks:
        key = (b.source, b.format)
        if key not in by_source:
            by_source[key] = load_problems(b.source, b.format).problems
        shared = sum((x.source, x.format) == key for x in suite.benchmarks) > 1  # one source, several benchmarks
        problems = [p for p in by_source[key] if p.benchmark == b.name] if shared else by_source[key]
        if not problems:
            found = sorted({p.benchmark for p in by_source[key]})
            raise KnowrlError(
                f"benchmark {b.name}: no problems in {b.source}",
                hint=f"benchmarks found there: {', '.join(found) or 'none'}",
            )
        out[b.name] = problems[:limit] if limit else problems
    return out
