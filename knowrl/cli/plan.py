"""`knowrl plan`, `knowrl compile` and `knowrl sweep`: a spec's job DAG, its compiled folder, a sweep's points."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from knowrl._errors import UsageError
from knowrl.cli._common import load

plan_app = typer.Typer(add_completion=False, rich_markup_mode=None)
compile_app = typer.Typer(add_completion=False, rich_markup_mode=None)
sweep_app = typer.Typer(add_completion=False, rich_markup_mode=None)

SpecArg = Annotated[Path, typer.Argument(help="Experiment spec (YAML).", show_default=False)]
OverridesArg = Annotated[
    list[str] | None, typer.Argument(help="Overrides, e.g. resources.nodes=4.", show_default=False)
]
SmokeOpt = Annotated[
    bool,
    typer.Option(
        "--smoke",
        help="The spec shrunk by the smoke profile (2 steps in phase 1, 1 in each later phase, 1 node, a few "
        "problems and samples): a run of its own that finds a broken setup in minutes.",
    ),
]
AssumeOpt = Annotated[list[str] | None, typer.Option("--assume", help="Cost assumption key=value (repeatable).")]


def _assumptions(pairs: list[str] | None) -> dict:
    from knowrl.cli._common import key_values
    from knowrl.plan import Assumptions

    out = key_values(pairs, "--assume", "gen_tokens_per_gpu_s=6000", float)

    unknown = set(out) - set(Assumptions.model_fields)
    if unknown:
        raise UsageError(
            f"unknown assumption {', '.join(sorted(unknown))}", hint=f"known: {', '.join(Assumptions.model_fields)}"
        )
    return out


@plan_app.command("plan")
def plan_command(
    spec: SpecArg,
    overrides: OverridesArg = None,
    assume: AssumeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    smoke: SmokeOpt = False,
) -> None:
    """Resolve a spec into its job DAG: resources, clip-schedule phases and GPU-hour estimates."""
    from knowrl.cli._common import print_plan
    from knowrl.plan import plan

    s, profile = load(spec, overrides, smoke)
    p = plan(s, _assumptions(assume))
    if as_json:
        typer.echo(json.dumps({**p.to_dict(), "smoke_overrides": profile} if smoke else p.to_dict(), indent=2))
        return
    if smoke:
        typer.echo("smoke profile (overrides on top of the spec; yours win):\n" + "".join(f"  {o}\n" for o in profile))
    print_plan(p, s)


@compile_app.command("compile")
def compile_command(
    spec: SpecArg,
    overrides: OverridesArg = None,
    backend: Annotated[str | None, typer.Option(help="nemo_rl, verl or local (default: the spec's).")] = None,
    out: Annotated[Path | None, typer.Option(help="Folder for the compiled files.")] = None,
    run_dir: Annotated[
        str | None, typer.Option(help="Where the cluster sees the compiled folder (default: the folder itself).")
    ] = None,
) -> None:
    """Write each job's backend files (per training phase) and a launch.sh a user could run by hand."""
    from knowrl.backends._compile import compiled_dir, write_compiled
    from knowrl.plan import plan
    from knowrl.runtime._cluster import for_cluster
    from knowrl.spec import load_spec

    extra = [f"resources.backend={backend}"] if backend else []
    s = for_cluster(load_spec(spec, [*(overrides or []), *extra]))  # the jobs start elsewhere: local paths absolute
    p = plan(s)
    out = out or compiled_dir(s, p)
    files = write_compiled(s, p, out, run_dir, say=typer.echo)
    typer.echo(f"compiled {len(p.jobs)} jobs for {p.backend} into {out}/:")
    for f in files:
        typer.echo(f"  {f}")


@sweep_app.command("sweep")
def sweep_command(
    spec: SpecArg,
    overrides: OverridesArg = None,
    with_plan: Annotated[bool, typer.Option("--plan", help="Plan every point and sum the cost.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    run: Annotated[bool, typer.Option("--run", help="Run the points not yet done.")] = False,
    force: Annotated[bool, typer.Option("--force", help="Run even though the sweep's definition changed.")] = False,
    max_parallel: Annotated[int, typer.Option(help="Points run at once (each its own `knowrl run`).", min=1)] = 1,
) -> None:
    """Expand a sweep into concrete specs (validated, hashed, deduplicated) and list them, or run them."""
    from knowrl.plan import expand, plan
    from knowrl.registry import statuses_by_spec
    from knowrl.spec import load_data, load_spec

    s = load_spec(spec, overrides or [])
    if s.sweep is None:
        raise UsageError(f"{spec} declares no sweep", hint="add a `sweep:` section with grid, zip or random axes")
    data, _ = load_data(spec, overrides or [])
    points = expand(s, data)
    known = statuses_by_spec(s.registry.path)
    rows = []
    for pt in points:
        row = {
            "name": pt.name,
            "spec_hash": pt.spec_hash[:12],
            "status": known.get(pt.spec_hash, "new"),
            "changes": pt.changes,
            "duplicates": pt.duplicates,
        }
        if with_plan:
            row["gpu_hours"] = round(plan(pt.spec).total_gpu_hours, 1)
        rows.append(row)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    for r in rows:
        cost = f"  {r['gpu_hours']:,.0f} GPU-h" if with_plan else ""
        dup = f"  (also {', '.join(r['duplicates'])})" if r["duplicates"] else ""
        typer.echo(f"{r['spec_hash']}  {r['status']:7} {r['name']}{cost}{dup}")
    total = f"; {sum(r['gpu_hours'] for r in rows):,.0f} GPU-hours in all" if with_plan else ""
    typer.echo(f"{len(rows)} points{total}")
    if run:
        from knowrl.runtime._sweep import run_sweep

        if run_sweep(s, points, force, max_parallel):
            raise typer.Exit(1)
