"""A plan compiled into a self-contained folder: each job's backend files, the rendered data, the exact Ray
submissions (`submit.json`) and a `launch.sh` that runs the same commands by hand.

`knowrl compile` writes it, `knowrl run --dry-run` writes it beside the plan it
prints, and the verl rehearsal submits from it; the folder is a run directory
(its `manifest.json` is what `python -m knowrl.runtime.job_main RUN JOB` reads).
"""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

from knowrl._errors import UsageError

KNOWRL_PACKAGE = Path(__file__).resolve().parents[1]
"""The running `knowrl` package: what the submissions' `py_modules` ship, and what a compiled folder copies."""


def topological(jobs) -> list:
    """The jobs in dependency order (each after every job it depends on); a cycle is an error."""
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


def _copy_package(modules: Path) -> Path:
    """`modules/knowrl`: this knowrl's code alone, replaced whole. Naming the package's own parent instead put a
    wheel install's whole site-packages on the backend's PYTHONPATH, another Python's packages included."""
    if modules.exists():
        shutil.rmtree(modules)
    shutil.copytree(KNOWRL_PACKAGE, modules / "knowrl", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return modules


def compiled_dir(spec, plan) -> Path:
    """Where `knowrl compile` and `knowrl run --dry-run` write a plan by default."""
    return Path(spec.resources.storage) / "compiled" / f"{spec.name}-{plan.run_id}-{plan.backend}"


def write_compiled(s, p, out: Path, run_dir: str | None = None, say=print) -> list[Path]:
    """Spec `s` and its plan `p` as a self-contained run directory `out`: the backend's files, the rendered data,
    `submit.json` and `launch.sh`.

    Every path inside is absolute (`run_dir`, default `out` itself, and the
    spec's local paths: callers pass it through `runtime._cluster.for_cluster`):
    Ray and the backends expand no shell syntax, and the cluster must see the
    run directory at that path (shared storage).
    """
    from knowrl._errors import KnowrlError
    from knowrl._io import atomic_write_bytes
    from knowrl._rundir import write_manifest
    from knowrl.backends import get_backend
    from knowrl.backends._data import GRADING_SITE, write_backend_data
    from knowrl.backends._submission import submission
    from knowrl.grading._site import build_site

    backend = get_backend(p.backend)
    run_dir = str(Path(run_dir).absolute()) if run_dir else str(out.absolute())
    written = []
    write_manifest(out, s, p)  # what `python -m knowrl.runtime.job_main RUN JOB` reads
    build_site(out / GRADING_SITE)  # every job grades with it, kp_select before the data job (grading/_site.py)
    modules = _copy_package(out / "py_modules")
    lines = [
        "#!/usr/bin/env bash",
        f"# knowrl plan {p.run_id} for {s.name} ({p.backend} {s.resources.backend_version}); spec {p.spec_hash}",
        f"# Jobs in dependency order, reading and writing {run_dir}: the entrypoints of submit.json, with their",
        "# runtime env's variables; knowrl's code (what the submissions' py_modules ship) is the copy beside this.",
        "set -euo pipefail",
        f"export PYTHONPATH={shlex.quote(str(modules.absolute()))}${{PYTHONPATH:+:$PYTHONPATH}}",
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
