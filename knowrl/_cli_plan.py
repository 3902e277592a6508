"""`knowrl plan`, `knowrl compile` and `knowrl sweep`."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Annotated

import typer

from knowrl._errors import UsageError

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
    from knowrl._cli_util import key_values
    from knowrl.plan import Assumptions

    out = key_values(pairs, "--assume", "gen_tokens_per_gpu_s=6000", float)

    unknown = set(out) - set(Assumptions.model_fields)
    if unknown:
        raise UsageError(
            f"unknown assumption {', '.join(sorted(unknown))}", hint=f"known: {', '.join(Assumptions.model_fields)}"
        )
    return out


def print_plan(p, spec) -> None:
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


@plan_app.command("plan")
def plan_command(
    spec: SpecArg,
    overrides: OverridesArg = None,
    assume: AssumeOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan as JSON.")] = False,
    smoke: SmokeOpt = False,
) -> None:
    """Resolve a spec into its job DAG: resources, clip-schedule phases and GPU-hour estimates."""
    from knowrl.plan import plan

    s, profile = load(spec, overrides, smoke)
    p = plan(s, _assumptions(assume))
    if as_json:
        typer.echo(json.dumps({**p.to_dict(), "smoke_overrides": profile} if smoke else p.to_dict(), indent=2))
        return
    if smoke:
        typer.echo("smoke profile (overrides on top of the spec; yours win):\n" + "".join(f"  {o}\n" for o in profile))
    print_plan(p, s)


def load(spec: Path, overrides: list[str] | None, smoke: bool = False):
    """(the spec, the smoke profile's overrides in force: [] without --smoke)."""
    if smoke:
        from knowrl.plan._smoke import load_smoke

        return load_smoke(spec, overrides or [])
    from knowrl.spec import load_spec

    return load_spec(spec, overrides or []), []


def topological(jobs) -> list:
    done, order = set(), []
    pending = list(jobs)
    while pending:
        ready = [j for j in pending if set(j.depends_on) <= done]
        if not ready:
            raise UsageError("the plan has a dependency cycle")
        for j in ready:
            order.append(j)
            done.add(j.id)
            pending.remove(j)
    return order


def write_compiled(s, p, out: Path, run_dir: str | None = None, say=print) -> list[Path]:
    """A self-contained run directory: the backend's files, the rendered data, `submit.json` and `launch.sh`.

    Every path inside is absolute (`run_dir`, default `out` itself, and the
    spec's local paths: callers pass it through `runtime._cluster.for_cluster`):
    Ray and the backends expand no shell syntax, and the cluster must see the
    run directory at that path (shared storage).
    """
    from knowrl._errors import KnowrlError
    from knowrl._io import atomic_write_bytes
    from knowrl.backends import get_backend
    from knowrl.backends._data import write_backend_data
    from knowrl.runtime._layout import write_manifest
    from knowrl.runtime._submission import submission

    backend = get_backend(p.backend)
    run_dir = str(Path(run_dir).absolute()) if run_dir else str(out.absolute())
    written = []
    write_manifest(out, s, p)  # what `python -m knowrl.runtime.job_main RUN JOB` reads
    lines = [
        "#!/usr/bin/env bash",
        f"# knowrl plan {p.run_id} for {s.name} ({p.backend} {s.resources.backend_version}); spec {p.spec_hash}",
        f"# Jobs in dependency order, reading and writing {run_dir}: the entrypoints of submit.json, with their",
        "# runtime env's variables; knowrl's code (the submissions' py_modules) comes from PYTHONPATH here.",
        "set -euo pipefail",
        f"export PYTHONPATH={shlex.quote(str(Path(__file__).resolve().parent.parent))}${{PYTHONPATH:+:$PYTHONPATH}}",
        "",
    ]
    requests = []
    for job in topological(p.jobs):
        request, files = submission(job, s, p, run_dir)
        for name, text in files.items():
            atomic_write_bytes(out / name, text.encode())
            written.append(out / name)
        requests.append({"job": job.id, "kind": job.kind, "depends_on": job.depends_on, **request})
        deps = f" (after {', '.join(job.depends_on)})" if job.depends_on else ""
        env = request["runtime_env"].get("env_vars", {})
        prefix = "env " + " ".join(shlex.quote(f"{k}={v}") for k, v in env.items()) + " " if env else ""
        entry = request["entrypoint"]
        lines += [f"# {job.id}: {job.kind}{deps}", f"{prefix}sh -c {shlex.quote(entry)}" if env else entry, ""]
    if backend.data_files(s):
        if s.hints.source == "compute" and s.hints.strategy != "none":
            say("data: rendered by the `data` job once kp_select has chosen the hints")
        else:
            try:
                counts = write_backend_data(s, out, backend)
                written += [out / f for f in counts]
            except KnowrlError as e:  # e.g. an hf:// source with the Hub unreachable
                say(f"data: not rendered here ({e}); the `data` job renders it where the run starts")
    script = out / "launch.sh"
    atomic_write_bytes(script, "\n".join(lines).encode())
    script.chmod(0o755)
    atomic_write_bytes(out / "submit.json", json.dumps(requests, indent=2).encode())
    atomic_write_bytes(out / "plan.json", json.dumps(p.to_dict(), indent=2).encode())
    return [*written, script, out / "submit.json", out / "plan.json", out / "manifest.json"]


def compiled_dir(s, p) -> Path:
    return Path(s.resources.storage) / "compiled" / f"{s.name}-{p.run_id}-{p.backend}"


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
    from knowrl.spec import load_data, load_spec

    s = load_spec(spec, overrides or [])
    if s.sweep is None:
        raise UsageError(f"{spec} declares no sweep", hint="add a `sweep:` section with grid, zip or random axes")
    data, _ = load_data(spec, overrides or [])
    points = expand(s, data)
    known = _registry_status(s.registry.path)
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
        _run_sweep(s, points, force, max_parallel)


def _run_sweep(s, points, force: bool, max_parallel: int = 1) -> None:
    """Record the sweep's definition, refuse a changed one unless forced, then run the points not yet done."""
    import hashlib

    from rich.console import Console

    from knowrl._io import atomic_write_bytes
    from knowrl.runtime._engine import run_spec

    definition = s.sweep.model_dump(mode="json")
    record = Path(s.resources.storage) / "sweeps" / f"{s.name}.json"
    if record.exists():
        old = json.loads(record.read_text())
        if old["definition"] != definition and not force:
            raise UsageError(
                f"sweep {s.name} was started with another definition ({record})",
                hint="rerun with --force to run the new points anyway, or rename the sweep",
            )
    sweep_id = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:12]
    atomic_write_bytes(
        record,
        json.dumps(
            {"sweep_id": sweep_id, "definition": definition, "points": [p.spec_hash for p in points]}, indent=2
        ).encode(),
    )
    console = Console()
    failed = 0
    if max_parallel == 1:
        for i, pt in enumerate(points, 1):
            console.print(f"[bold]sweep point {i}/{len(points)}[/] {pt.name}")
            statuses = run_spec(pt.spec, console=console, sweep_id=sweep_id)
            failed += any(v != "succeeded" for v in statuses.values())
    else:
        failed = _run_points_in_parallel(s, points, max_parallel, console)
    if failed:
        raise typer.Exit(1)


def _run_points_in_parallel(s, points, max_parallel: int, console) -> int:
    """Each point as its own `knowrl run` process (its own embedded Ray), at most `max_parallel` at once."""
    import subprocess
    import sys
    from concurrent.futures import ThreadPoolExecutor

    import yaml

    folder = Path(s.resources.storage) / "sweeps" / s.name
    folder.mkdir(parents=True, exist_ok=True)

    def one(pt) -> int:
        spec_file = folder / f"{pt.spec_hash[:12]}.yaml"
        spec_file.write_text(yaml.safe_dump(pt.spec.model_dump(mode="json"), sort_keys=False))
        log = folder / f"{pt.spec_hash[:12]}.log"
        with log.open("w") as out:
            rc = subprocess.call(
                [sys.executable, "-m", "knowrl.cli", "run", str(spec_file)], stdout=out, stderr=subprocess.STDOUT
            )
        console.print(f"{'[green]done[/]' if rc == 0 else '[red]failed[/]'} {pt.name}  (log: {log})")
        return int(rc != 0)

    with ThreadPoolExecutor(max_parallel) as pool:
        return sum(pool.map(one, points))


def _registry_status(path: str) -> dict[str, str]:
    """spec hash -> run status, from the registry when one exists (else every point is new)."""
    if not Path(path).exists():
        return {}
    from knowrl.registry import reader

    with reader(path) as con:
        return dict(con.execute("SELECT spec_hash, status FROM runs").fetchall())
