"""verl's training and export jobs as knowrl submits them, on a real two-node Ray cluster of the backend's environment.

`python tests/rehearsal/verl/submissions.py ROOT RELEASE [WORK]` (knowrl's environment) compiles css_main with the
smoke profile and the rehearsal's overrides (`knowrl compile`'s own `write_compiled`: data, `submit.json`), starts
a head and a worker from ROOT/.venv-rehearsal-verl-RELEASE, and sends `train-p1`, `train-p2` and `export-final`
through the Jobs API exactly as `submit.json` has them. It checks verl's checkpoint layout after each phase with
`verl.checkpoint_done`, that phase 2 resumed phase 1's step, and that the merged folder loads with transformers in
the backend's environment. `test_verl_submissions.py` runs it; `make rehearsal` runs the whole plan instead.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
sys.path[:0] = [str(HERE), str(HERE.parent)]

import data  # noqa: E402
from cluster import started  # noqa: E402

JOBS = ("train-p1", "train-p2", "export-final")


def say(text: str) -> None:
    print(f"[verl submissions] {text}", flush=True)


def compiled(root: Path, release: str, work: Path, model: Path):
    """The spec (smoke profile + rehearsal overrides), its plan, and the compiled folder's submit.json requests."""
    from knowrl.backends._compile import write_compiled
    from knowrl.plan import plan
    from knowrl.plan._smoke import load_smoke

    files = data.write(work / "data")
    overrides = [
        f"model.path={model}",
        f"data.train=[{{source: {files['train']}, format: knowrl-train}}]",
        f"data.validation=[{{source: {files['validation']}, format: knowrl-annotations, name: aime24}}]",
        "algorithm.max_prompt_length=512",
        "algorithm.max_response_length=32",
        "algorithm.overlong.buffer_length=8",
        "eval.checkpoints=[final]",
        "resources.backend=verl",
        f"resources.backend_version={release}",
        f"resources.backend_dir={root / '.rehearsal' / f'verl-{release}'}",
        "resources.gpus_per_node=2",
        f"resources.storage={work / 'storage'}",
    ]
    spec, profile = load_smoke(REPO / "experiments/css_main.yaml", overrides)
    p = plan(spec)
    run = work / "run"
    write_compiled(spec, p, run, say=say)
    requests = {r["job"]: r for r in json.loads((run / "submit.json").read_text())}
    return spec, p, run, requests


def submit_and_wait(client, request: dict, timeout_s: float) -> str:
    from ray.job_submission import JobStatus

    keys = ("submission_id", "entrypoint", "runtime_env", "entrypoint_num_cpus", "entrypoint_num_gpus", "metadata")
    request = dict(request)
    if os.environ.get("KNOWRL_VERL_ADDRESS"):  # a held cluster keeps every submission id it has seen
        request["submission_id"] += f"-{int(time.time())}"
    sid = client.submit_job(**{k: request[k] for k in keys})
    say(f"submitted {request['job']} as {sid}")
    deadline = time.monotonic() + timeout_s
    while (status := client.get_job_status(sid)) not in (JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.STOPPED):
        if time.monotonic() > deadline:
            client.stop_job(sid)
            raise TimeoutError(f"{request['job']} still {status} after {timeout_s} s")
        time.sleep(1)
    logs = client.get_job_logs(sid)
    if status != JobStatus.SUCCEEDED:
        raise RuntimeError(f"{request['job']} ({sid}) ended {status}:\n{logs[-6000:]}")
    return logs


class _Existing:
    """A cluster someone else started (`KNOWRL_VERL_ADDRESS`, e.g. from `submissions.py ROOT RELEASE --hold`)."""

    def __init__(self, address: str) -> None:
        self.address = address

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        pass


def hold(root: Path, release: str, work: Path) -> None:
    """Start the two-node cluster and keep it until SIGINT/SIGTERM, for repeated `KNOWRL_VERL_ADDRESS=... main`."""
    import signal

    cluster = started(root / f".venv-rehearsal-verl-{release}", work / "ray-logs")
    stop = lambda *_: (cluster.stop(), sys.exit(0))  # noqa: E731
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    say(f"holding {cluster.address} (pid {os.getpid()})")
    while True:
        time.sleep(3600)


def main(root: Path, release: str, work: Path, model: Path, jobs=JOBS) -> dict:
    from ray.job_submission import JobSubmissionClient

    from knowrl.backends import verl

    env = root / f".venv-rehearsal-verl-{release}"
    spec, p, run, requests = compiled(root, release, work, model)
    timings = {}
    address = os.environ.get("KNOWRL_VERL_ADDRESS")
    with _Existing(address) if address else started(env, work / "ray-logs") as cluster:
        say(f"two-node cluster at {cluster.address} from {env}")
        client = JobSubmissionClient(cluster.address)
        logs = {}
        for job in jobs:
            t0 = time.monotonic()
            logs[job] = submit_and_wait(client, requests[job], timeout_s=1800)
            timings[job] = round(time.monotonic() - t0, 1)
            say(f"{job} succeeded in {timings[job]} s")
            (work / f"{job}.log").write_text(logs[job])
            if job == "train-p1":
                assert verl.checkpoint_done(run, 2) and not verl.checkpoint_done(run, 3)
            if job == "train-p2":
                assert verl.checkpoint_done(run, 3)
    if "export-final" not in jobs:
        return {"run": run, "logs": logs, "timings": timings}
    layout = sorted(str(f.relative_to(run)) for f in (run / "checkpoints").rglob("*") if f.is_file())
    say("checkpoint layout:\n  " + "\n  ".join(layout))
    exported = run / p.job("export-final").outputs["model"]
    check = (
        "from transformers import AutoModelForCausalLM as M, AutoTokenizer as T; import sys; "
        "M.from_pretrained(sys.argv[1]); T.from_pretrained(sys.argv[1]); print('loads')"
    )
    loaded = subprocess.run([str(env / "bin/python"), "-c", check, str(exported)], capture_output=True, text=True)
    assert loaded.stdout.strip().endswith("loads"), loaded.stderr[-3000:]
    say(f"exported {exported}: {sorted(f.name for f in exported.iterdir())}")
    return {"run": run, "logs": logs, "timings": timings, "layout": layout, "exported": exported, "plan": p}


if __name__ == "__main__":
    root, release = Path(sys.argv[1]).absolute(), sys.argv[2]
    if "--hold" in sys.argv:
        hold(root, release, Path(f"/tmp/verl-cluster-{release}"))
    work = Path(sys.argv[3] if len(sys.argv) > 3 else f"/tmp/verl-submissions-{release}").absolute()
    tiny = work / "tiny"
    subprocess.run([sys.executable, "-m", "knowrl.cli", "model", "tiny", "--out", str(tiny)], check=True)
    from scripted_model import build

    model = build(tiny, work / "scripted")
    only = os.environ.get("KNOWRL_VERL_JOBS")
    out = main(root, release, work, model, tuple(only.split(",")) if only else JOBS)
    say(f"timings: {out['timings']}")
