"""`knowrl run` and `knowrl status`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from knowrl._errors import KnowrlError

run_app = typer.Typer(add_completion=False, rich_markup_mode=None)
status_app = typer.Typer(add_completion=False, rich_markup_mode=None)
logs_app = typer.Typer(add_completion=False, rich_markup_mode=None)
cancel_app = typer.Typer(add_completion=False, rich_markup_mode=None)
StorageOpt = Annotated[str, typer.Option(help="Storage root.")]


def _run_dir(run_id: str, storage: str) -> Path:
    found = sorted((Path(storage) / "runs").glob(f"{run_id}*"))
    if len(found) != 1:
        raise KnowrlError(
            f"{'no' if not found else 'more than one'} run matches '{run_id}' under {storage}/runs",
            hint="`knowrl status --storage DIR` lists the runs",
        )
    return found[0]


@logs_app.command("logs")
def logs(
    run_id: Annotated[str, typer.Argument(help="Run id (or a prefix).")],
    job: Annotated[str | None, typer.Argument(help="Job id (default: every job).")] = None,
    follow: Annotated[bool, typer.Option("-f", "--follow", help="Keep printing as the log grows.")] = False,
    storage: StorageOpt = ".knowrl",
) -> None:
    """Print a run's job logs (what each job wrote while it ran)."""
    import time

    run = _run_dir(run_id, storage)
    files = [run / job / "job.log"] if job else sorted(run.glob("*/job.log"))
    if not files or not all(f.exists() for f in files):
        raise KnowrlError(f"no log for {job or 'any job'} in {run}", hint="jobs write job.log once they start")
    offsets = {}
    while True:
        for f in files:
            text = f.read_text(encoding="utf-8", errors="replace")[offsets.get(f, 0) :]
            if text:
                prefix = "" if job else f"[{f.parent.name}] "
                typer.echo("".join(prefix + line for line in text.splitlines(keepends=True)), nl=False)
                offsets[f] = offsets.get(f, 0) + len(text)
        if not follow:
            return
        time.sleep(1)


@cancel_app.command("cancel")
def cancel(
    run_id: Annotated[str, typer.Argument(help="Run id (or a prefix).")], storage: StorageOpt = ".knowrl"
) -> None:
    """Stop a run: its cluster jobs, or the local `knowrl run` driving it; finished jobs are kept."""
    import os
    import signal

    from knowrl.runtime._layout import read_json

    run = _run_dir(run_id, storage)
    manifest = read_json(run / "manifest.json")
    if manifest.get("ray_address"):
        from knowrl.plan._plan import Plan
        from knowrl.runtime._cluster import client
        from knowrl.runtime._engine import job_status
        from knowrl.runtime._layout import now, write_status

        c = client(manifest["ray_address"])
        for job in Plan.from_dict(manifest["plan"]).jobs:
            st = job_status(run, job.id)
            if st.get("active"):
                c.stop_job(st["submission_id"])
                write_status(run, job, "cancelled", active=False, finished_at=now(), error="cancelled")
                typer.echo(f"stopped {job.id} ({st['submission_id']})")
        return
    from knowrl.runtime._engine import lock_holder

    pid = lock_holder(run)
    if pid is None:
        raise KnowrlError(f"run {run.name} is not running", hint=f"`knowrl status {run.name}` shows its jobs")
    os.kill(pid, signal.SIGINT)
    typer.echo(f"asked the `knowrl run` driving {run.name} (pid {pid}) to stop; the run stays resumable")


@run_app.command("run")
def run(
    spec: Annotated[Path, typer.Argument(help="Experiment spec (YAML).", show_default=False)],
    overrides: Annotated[list[str] | None, typer.Argument(help="Overrides.", show_default=False)] = None,
    address: Annotated[str | None, typer.Option(help="A Ray cluster's Jobs API (http://head:8265).")] = None,
    detach: Annotated[bool, typer.Option("--detach", help="With --address: submit and return at once.")] = False,
    allow_dirty: Annotated[bool, typer.Option("--allow-dirty", help="Submit from a git tree with changes.")] = False,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan and write the compiled inputs.")] = False,
    preflight: Annotated[
        bool,
        typer.Option(
            "--preflight/--no-preflight",
            help="With --address: check the cluster's GPUs and installed backend before submitting "
            "(skip for an autoscaling cluster that grows on demand).",
        ),
    ] = True,
) -> None:
    """Run a spec: every unfinished job of its plan, on an embedded local Ray or a cluster; resumable."""
    from rich.console import Console

    from knowrl.spec import load_spec

    s = load_spec(spec, overrides or [])
    console = Console()
    from knowrl.plan import plan

    p = plan(s)
    if dry_run:
        from knowrl._cli_plan import compiled_dir, print_plan, write_compiled

        print_plan(p, s)
        out = compiled_dir(s, p)
        write_compiled(s, p, out, say=console.print)
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
        statuses = submit_run(s, address, detach=detach, preflight=preflight, say=console.print)
        if detach:
            console.print(f"submitted; follow with `knowrl status {p.run_id} --storage {s.resources.storage}`")
            return
    else:
        from knowrl.runtime._engine import run_spec

        statuses = run_spec(s, console=console)
    registry = s.registry.path
    evaluated = any(j.kind == "eval" and statuses.get(j.id) == "succeeded" for j in p.jobs)
    if evaluated and Path(registry).exists():
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
