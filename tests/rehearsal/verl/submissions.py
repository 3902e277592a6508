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

from cluster import Cluster  # noqa: E402
from data import SUFFIX, _hinted  # noqa: E402

JOBS = ("train-p1", "train-p2", "export-final")


def say(text: str) -> None:
    print(f"[verl submissions] {text}", flush=True)


SUMS = [(a, b, op) for a, b in ((2, 3), (1, 4), (9, 4), (7, 2), (10, 2), (15, 3), (25, 5), (4, 1)) for op in "+-"]
ANSWERS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b}


def write_data(out: Path) -> dict[str, Path]:
    """Arithmetic in the paper's record formats (knowrl-train, knowrl-annotations), most of it answered by 5.

    The scripted model answers 5 in about 6 of 10 samples: groups of a problem whose answer is 5 differ in reward
    and survive DAPO's filter, the others score 0 throughout and are dropped, as all-wrong groups are."""
    out.mkdir(parents=True, exist_ok=True)
    problems = [(f"What is {a} {op} {b}?", str(ANSWERS[op](a, b))) for a, b, op in SUMS]
    problems = [p for p in problems if p[1] == "5"] * 2 + [p for p in problems if p[1] != "5"][:6]
    kps = ["Addition counts on.", "Subtraction counts back."]
    train = [
        {
            "data_source": "knowrl",
            "prompt": [{"role": "user", "content": _hinted(q, kps[:1])}],
            "reward_model": {"ground_truth": a, "style": "rule"},
            "kp_list": kps,
            "css_selected": kps[:1],
            "cbrs_selected": kps,
        }
        for q, a in problems
    ]
    val = [
        {
            "dataset": "AIME24",
            "prompt": [{"role": "user", "content": f"{q}\n\n{SUFFIX}"}],
            "reward_model": {"ground_truth": a, "style": "rule"},
            "kp_list": kps,
            "css_kept_kp_index": [0],
            "cbrs_kept_kp_index": [0, 1],
        }
        for q, a in problems[:4]
    ]
    paths = {"train": out / "train.jsonl", "validation": out / "val.jsonl"}
    for role, rows in (("train", train), ("validation", val)):
        paths[role].write_text("".join(json.dumps(r) + "\n" for r in rows))
    return paths


def compiled(root: Path, release: str, work: Path, model: Path):
    """The spec (smoke profile + rehearsal overrides), its plan, and the compiled folder's submit.json requests."""
    from knowrl._cli_plan import write_compiled
    from knowrl.plan import plan
    from knowrl.plan._smoke import load_smoke

    files = write_data(work / "data")
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


_PATIENT_RAY = (
    "import sys, time, types; import ray._private.services as s, ray._private.node as n; "
    "t = types.SimpleNamespace(**{k: getattr(time, k) for k in dir(time) if not k.startswith('__')}); "
    "t.sleep = lambda d: time.sleep(10 * d); t.monotonic = lambda: time.monotonic() / 10; s.time = n.time = t; "
    "from ray.scripts.scripts import main; sys.argv[0] = 'ray'; main()"
)
"""`ray start` with the startup waits of `services` and `node` ten times as long (see _PatientCluster)."""


class _PatientCluster(Cluster):
    """The rehearsal's cluster, its nodes given time to come up on a loaded machine.

    Ray's `ray start` waits a fixed 20 s for the head's dashboard (the Jobs API; `services.start_api_server`: 200
    polls 0.1 s apart) and 30 s for a raylet to register (`node.Node`), then gives up; on a 2-core machine under load
    both take longer. The nodes here are `ray start` itself with those two modules' clocks slowed tenfold; nothing
    else of Ray changes, and nothing verl runs is touched."""

    def _start(self, name: str, *args: str) -> None:
        env = {
            **os.environ,
            "PATH": f"{self.env / 'bin'}:{os.environ['PATH']}",
            "RAY_AUTH_MODE": "disabled",
            "RAY_USAGE_STATS_ENABLED": "0",
            "VIRTUAL_ENV": str(self.env),
        }
        for leak in ("PYTHONPATH", "PYTHONHOME"):
            env.pop(leak, None)
        cmd = [str(self.env / "bin/python"), "-c", _PATIENT_RAY, "start", "--block", "--node-ip-address=127.0.0.1"]
        cmd += [*args, f"--num-cpus={self.cpus}", f"--num-gpus={self.gpus}"]
        log = (self.log_dir / f"ray-{name}.log").open("w")
        self.nodes.append(subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True))


def started(env: Path, logs: Path, attempts: int = 5) -> Cluster:
    """Two nodes with 2 logical GPUs and 8 logical CPUs each: verl 0.9's resource pool bundles take 3 CPUs per GPU
    (`ResourcePoolManager.max_colocate_count`), so a node's two GPU bundles alone ask for 6."""
    os.environ.setdefault("RAY_DASHBOARD_SUBPROCESS_MODULE_WAIT_READY_TIMEOUT", "600")
    for attempt in range(1, attempts + 1):
        try:
            return _PatientCluster(env, logs / str(attempt), cpus_per_node=8).start(timeout_s=600)
        except RuntimeError as e:
            if attempt == attempts:
                raise
            say(f"cluster start {attempt} failed ({str(e).splitlines()[0]}); again")
    raise AssertionError("unreachable")


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
