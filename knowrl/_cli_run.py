"""`knowrl run` and `knowrl status`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from knowrl._errors import KnowrlError

run_app = typer.Typer(add_completion=False, rich_markup_mode=None)
status_app = typer.Typer(add_completion=False, rich_markup_mode=None)


@run_app.command("run")
def run(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML).", show_default=False)],
    overrides: Annotated[list[str] | None, typer.Argument(help="Overrides.", show_default=False)] = None,
    address: Annotated[str | None, typer.Option(help="A Ray cluster's Jobs API (http://head:8265).")] = None,
    detach: Annotated[bool, typer.Option("--detach", help="With --address: submit and return at once.")] = False,
    allow_dirty: Annotated[bool, typer.Option("--allow-dirty", help="Submit from a git tree with changes.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and write the compiled inputs.")] = False,
) -> None:
    """Run a spec: every unfinished job of its plan, on an embedded local Ray or a cluster; resumable."""
    from rich.console import Console

    from knowrl.spec import load_spec

    s = load_spec(spec, overrides or [])
    console = Console()
    from knowrl.plan import plan

    p = plan(s)
    if dry_run:
        from knowrl._cli_plan import print_plan, write_compiled

        print_plan(p, s)
        out = Path(s.resources.storage) / "runs" / p.run_id / "compiled"
        write_compiled(s, p, out, str(out.parent))
        console.print(f"compiled inputs in {out}/ (nothing submitted)")
        return
    address = address or s.resources.ray_address
    if address:
        from knowrl.runtime._cluster import submit_run
        from knowrl.runtime._layout import git_state

        _, dirty = git_state()
        if dirty and not allow_dirty:
            raise KnowrlError(
                "the git tree has uncommitted changes; a cluster run records the commit it ran",
                hint="commit first, or pass --allow-dirty (recorded in the manifest)",
            )
        statuses = submit_run(s, address, detach=detach, say=console.print)
        if detach:
            console.print(f"submitted; follow with `knowrl status {p.run_id} --storage {s.resources.storage}`")
            return
    else:
        from knowrl.runtime._engine import run_spec

        statuses = run_spec(s, console=console)
    registry = s.registry.path
    if Path(registry).exists():
        from knowrl._cli_registry import compare

        compare(
            runs=[p.run_id],
            hint_mode=None,
            checkpoint=None,
            with_reference=False,
            diff=None,
            registry=registry,
            fmt="table",
        )
    console.print(
        f"\ninspect later:\n  knowrl status {p.run_id}\n  knowrl show-run {p.run_id} --registry {registry}\n"
        f"  knowrl compare {p.run_id} --registry {registry}\n  ls {s.resources.storage}/runs/{p.run_id}/"
    )
    if any(v != "succeeded" for v in statuses.values()):
        raise typer.Exit(1)


@status_app.command("status")
def status(
    run_id: Annotated[str | None, typer.Argument(help="Run id (default: every run).")] = None,
    storage: Annotated[str, typer.Option(help="Storage root.")] = ".knowrl",
) -> None:
    """Jobs and states of runs, from their run directories."""
    from knowrl.runtime._layout import read_json

    runs = sorted((Path(storage) / "runs").glob(f"{run_id or ''}*"))
    if not runs:
        raise KnowrlError(f"no run {run_id or ''} under {storage}/runs")
    for run in runs:
        m = read_json(run / "manifest.json") if (run / "manifest.json").exists() else {"name": "?"}
        if m.get("ray_address"):  # a cluster run: reconcile with Ray, submit what became ready, ingest
            from knowrl.runtime._cluster import follow

            follow(run, detach=True, say=typer.echo)
        typer.echo(f"{run.name}  {m['name']}")
        for status_file in sorted(run.glob("*/status.json")):
            st = read_json(status_file)
            err = f"  {st['error'][:80]}" if st.get("error") else ""
            typer.echo(f"  {st['job_id']:40} {st['status']:10} attempts {st.get('attempts', 0)}{err}")
