"""What several command modules share: option types, the spec loader with `--smoke`, and the printers."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from knowrl._errors import UsageError

DEFAULT_REGISTRY = ".knowrl/registry.duckdb"

RegistryOpt = Annotated[str, typer.Option("--registry", help="The DuckDB registry file.")]
FormatOpt = Annotated[str, typer.Option("--format", help="table, csv, json or markdown.")]


def key_values(
    items: list[str] | None, option: str, example: str, convert: Callable[[str], Any] | None = None
) -> dict[str, Any]:
    """Repeated `--option key=value` flags as a dict; values are YAML unless `convert` says otherwise."""
    if convert is None:
        import yaml

        convert = yaml.safe_load
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UsageError(f"{option} {item!r}: expected key=value", hint=f"e.g. {option} {example}")
        try:
            out[key] = convert(value)
        except ValueError:
            raise UsageError(
                f"{option} {item!r}: cannot read the value {value!r}", hint=f"e.g. {option} {example}"
            ) from None
    return out


def load(spec: Path, overrides: list[str] | None, smoke: bool = False):
    """(the spec, the smoke profile's overrides in force: [] without --smoke)."""
    if smoke:
        from knowrl.plan._smoke import load_smoke

        return load_smoke(spec, overrides or [])
    from knowrl.spec import load_spec

    return load_spec(spec, overrides or []), []


def print_plan(p, spec) -> None:
    """The plan as a table, its phases, cost and inputs, and what the backend approximates (`plan`, `run --dry-run`)."""
    from rich.console import Console
    from rich.table import Column, Table

    from knowrl.backends import get_backend
    from knowrl.plan._inputs import describe_inputs

    console = Console()
    table = Table(
        Column("job", no_wrap=True, min_width=max((len(j.id) for j in p.jobs), default=3)),  # ids stay whole
        "kind",
        "depends on",
        "resources",
        "steps",
        "est. GPU-h",
        title=f"plan {p.run_id} ({p.backend}, {p.cluster['nodes']} x {p.cluster['gpus_per_node']} "
        f"{p.cluster['gpu_type']})",
    )
    for j in p.jobs:
        res = (
            f"{j.resources.nodes} x {j.resources.gpus_per_node} GPU" if j.resources.gpus else f"{j.resources.cpus} CPU"
        )
        steps = f"{j.params['start_step']}..{j.params['end_step']}" if j.kind == "train" else ""
        table.add_row(j.id, j.kind, ", ".join(j.depends_on), res, steps, f"{j.gpu_hours:,.1f}")
    console.print(table)
    for ph in p.phases:
        console.print(
            f"phase {ph['phase']}: steps {ph['steps'][0]}..{ph['steps'][1]}, clip low {ph['clip_low']}, "
            f"high {ph['clip_high']}"
        )
    console.print(
        f"[bold]total: {p.total_gpu_hours:,.1f} GPU-hours[/] "
        f"(~{p.total_gpu_hours / max(1, p.cluster['nodes'] * p.cluster['gpus_per_node']) / 24:,.1f} days "
        f"on the whole cluster)"
    )
    console.print("assumptions: " + ", ".join(f"{k}={v:g}" for k, v in p.assumptions.items()))
    console.print("inputs (part of the run id):")
    for what, line in describe_inputs(p.inputs).items():
        console.print(f"  {what:20} {line}", highlight=False, soft_wrap=True)
    for note in get_backend(p.backend).approximations(spec):
        console.print(f"[yellow]approximation[/]: {note}")


def emit(header: list[str], rows: list[list], fmt: str, title: str = "") -> None:
    """Print rows as a rich table, CSV, JSON or Markdown."""
    if fmt == "json":
        typer.echo(json.dumps([dict(zip(header, r, strict=True)) for r in rows], indent=2, default=str))
    elif fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf)
        w.writerow(header)
        w.writerows(rows)
        typer.echo(buf.getvalue(), nl=False)
    elif fmt == "markdown":
        typer.echo("| " + " | ".join(header) + " |")
        typer.echo("|" + "---|" * len(header))
        for r in rows:
            typer.echo("| " + " | ".join("" if v is None else str(v) for v in r) + " |")
    elif fmt == "table":
        from rich.console import Console
        from rich.table import Table

        t = Table(*header, title=title or None)
        for r in rows:
            t.add_row(*("" if v is None else str(v) for v in r))
        Console(width=max(120, 14 * len(header))).print(t)
    else:
        raise UsageError(f"unknown format '{fmt}'", hint="use table, csv, json or markdown")


def fmt_number(v) -> str:
    return "" if v is None else f"{v:.2f}"
