"""The main job rehearsed: `knowrl run experiments/css_main.yaml --smoke --address ...` on a real two-node Ray cluster.

Run by `make rehearsal` once per backend release, with the backend's own
environment and checkout named by the environment:

- `KNOWRL_REHEARSAL_BACKEND`: `nemo_rl`, `verl-0.4` or `verl-0.9`;
- `KNOWRL_REHEARSAL_ENV`: the backend's environment (its `bin/ray` starts the
  nodes, its `bin/python3` runs every job);
- `KNOWRL_REHEARSAL_CHECKOUT`: the backend's checkout, where the GPU-bound
  modules are stood in (see the README beside each stand-in under
  `tests/rehearsal/`); it is `resources.backend_dir`, never chosen by knowrl;
- `KNOWRL_REHEARSAL_NODE_ENV` (optional): what the backend's image exports on
  a node (NeMo-RL's `uv` settings), written by its build.

knowrl itself runs here, from this checkout's environment, as a user's
machine would submit: the run directory lives on "shared storage" outside the
checkout, the command starts in another working directory, and every job goes
through the Jobs API. The overrides below shrink the model, data, steps and
eval, size verl 0.9's worker pools to the nodes, and point at the stand-in
checkout; nothing else of css_main changes.
The policy is `scripted_model.py`'s tiny model that answers right about 6
times in 10, so DAPO's filter keeps groups and every step trains.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(HERE))

import data as rehearsal_data  # noqa: E402
from cluster import started  # noqa: E402

BACKEND = os.environ.get("KNOWRL_REHEARSAL_BACKEND", "")
ENV = os.environ.get("KNOWRL_REHEARSAL_ENV", "")
CHECKOUT = os.environ.get("KNOWRL_REHEARSAL_CHECKOUT", "")
NODE_ENV = os.environ.get("KNOWRL_REHEARSAL_NODE_ENV") or None
RELEASES = {"nemo_rl": ("nemo_rl", "v0.7.0"), "verl-0.4": ("verl", "0.4"), "verl-0.9": ("verl", "0.9")}

if not BACKEND:  # collected by hand without `make rehearsal`: say what it needs instead of running nothing
    pytest.fail(
        "the rehearsal runs from `make rehearsal`, which builds the backend environments and checkouts and sets "
        "KNOWRL_REHEARSAL_BACKEND, KNOWRL_REHEARSAL_ENV and KNOWRL_REHEARSAL_CHECKOUT",
        pytrace=False,
    )


def say(text: str) -> None:
    print(f"[rehearsal {BACKEND}] {text}", flush=True)


def knowrl(*args: str, cwd: Path, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([sys.executable, "-m", "knowrl.cli", *args], capture_output=True, text=True, cwd=cwd)
    if check:
        assert r.returncode == 0, (
            f"knowrl {' '.join(args[:2])}: exit {r.returncode}\n{r.stdout[-3000:]}{r.stderr[-3000:]}"
        )
    return r


def overrides(shared: Path, model: str, files: dict[str, Path]) -> list[str]:
    backend, release = RELEASES[BACKEND]
    return [
        # the model: the scripted tiny Qwen2-style model instead of OpenMath-Nemotron-1.5B
        f"model.path={model}",
        # the data: the paper's formats, the quickstart's arithmetic, instead of the Hub's sets
        f"data.train=[{{source: {files['train']}, format: knowrl-train}}]",
        f"data.validation=[{{source: {files['validation']}, format: knowrl-annotations, name: aime24}}]",
        # the steps: lengths a tiny model answers in (the smoke profile sets the steps and batches)
        "algorithm.max_prompt_length=512",
        "algorithm.max_response_length=32",
        "algorithm.overlong.buffer_length=8",
        # the eval: one small benchmark, base and final, on transformers (no vLLM on these nodes)
        "eval.suite=null",
        f"eval.benchmarks=[{{name: aime25, source: {files['eval']}, format: knowrl-annotations, samples: 2}}]",
        "eval.checkpoints=[base, final]",
        "eval.hint_modes=[none, css]",  # two of css_main's three: each mode is one more job of the same kind
        "eval.sampling.max_tokens=32",
        "eval.generator=transformers",
        # where: the stand-in checkout on the two-node cluster, the run on shared storage
        f"resources.backend={backend}",
        f"resources.backend_version={release}",
        f"resources.backend_dir={CHECKOUT}",
        "resources.gpus_per_node=2",
        "resources.retries.backoff_s=1",
        f"resources.storage={shared / 'storage'}",
        f"registry.path={shared / 'registry.duckdb'}",
        f"tracking.repo={shared / 'aim'}",
        # the backend's own worker pools sized to a 2-core node: verl 0.9 starts 8 agent-loop and 8 reward-loop
        # processes per training job by default (16 imports of verl and torch; one of each does this work)
        *(
            ["resources.backend_overrides=[actor_rollout_ref.rollout.agent.num_workers=1,reward.num_workers=1]"]
            if BACKEND == "verl-0.9"
            else []
        ),
    ]


def statuses(run: Path) -> dict[str, dict]:
    return {p.parent.name: json.loads(p.read_text()) for p in run.glob("*/status.json")}


def took_s(st: dict) -> float | None:
    """A job's last attempt, submitted to finished, in seconds (what the rehearsal's time goes to)."""
    from datetime import datetime

    try:
        return (datetime.fromisoformat(st["finished_at"]) - datetime.fromisoformat(st["submitted_at"])).total_seconds()
    except (KeyError, TypeError, ValueError):
        return None


def wait_for(what: str, ready, timeout_s: float = 900, driver: subprocess.Popen | None = None):
    deadline = time.monotonic() + timeout_s
    while not (found := ready()):
        if driver is not None and driver.poll() is not None:
            out, err = driver.communicate()
            pytest.fail(f"the driver exited ({driver.returncode}) before {what}:\n{out[-4000:]}\n{err[-4000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return found


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with started(Path(ENV), tmp_path_factory.mktemp("ray-logs"), node_env=NODE_ENV) as c:
        say(f"two-node Ray cluster up at {c.address} from {ENV}")
        yield c


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    from scripted_model import build

    out = tmp_path_factory.mktemp("models")
    subprocess.run([sys.executable, "-m", "knowrl.cli", "model", "tiny", "--out", str(out / "tiny")], check=True)
    return str(build(out / "tiny", out / "scripted"))


def test_the_main_job_end_to_end_with_a_retried_phase_and_a_killed_driver(cluster, model, tmp_path):
    from ray.job_submission import JobSubmissionClient

    from knowrl.backends import get_backend

    shared, work = tmp_path / "shared", tmp_path / "elsewhere"
    work.mkdir()
    args = ["run", str(ROOT / "experiments/css_main.yaml"), "--smoke", "--address", cluster.address, "--allow-dirty"]
    args += overrides(shared, model, rehearsal_data.write(shared / "data"))
    plan = json.loads(knowrl("plan", *args[1:3], *args[6:], "--json", cwd=work).stdout)
    say("smoke profile: " + " ".join(plan["smoke_overrides"]))
    run = shared / "storage/runs" / plan["run_id"]
    driver = subprocess.Popen(
        [sys.executable, "-m", "knowrl.cli", *args],
        cwd=work,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    backend = get_backend(RELEASES[BACKEND][0])
    jobs_api = JobSubmissionClient(cluster.address)

    # Fault 1: train-p1 stopped through Ray once its step-1 checkpoint is complete; knowrl retries it, it resumes.
    wait_for("train-p1's first checkpoint", lambda: backend.checkpoint_done(run, 1), driver=driver)
    first = statuses(run)["train-p1"]["submission_id"]
    jobs_api.stop_job(first)
    say(f"stopped {first} through Ray after its step-1 checkpoint")

    # Fault 2: the driver SIGKILLed while train-p2 runs; `knowrl status` carries the bookkeeping on.
    wait_for("train-p2 to be submitted", lambda: statuses(run).get("train-p2", {}).get("active"), driver=driver)
    os.killpg(driver.pid, signal.SIGKILL)
    out, _ = driver.communicate()
    say("driver SIGKILLed while train-p2 ran; its output so far:\n" + out[-3000:])
    storage = str(shared / "storage")
    done = lambda: (s := statuses(run)) and all(not v.get("active") for v in s.values()) and len(s) == len(plan["jobs"])  # noqa: E731
    deadline = time.monotonic() + 1800
    while not done():
        knowrl("status", run.name, "--storage", storage, cwd=work)
        assert time.monotonic() < deadline, statuses(run)
        time.sleep(2)
    final = statuses(run)
    for job_id, st in sorted(final.items(), key=lambda kv: kv[1].get("submitted_at") or ""):
        took = took_s(st)
        say(
            f"{job_id:28} {st['status']:10} attempts {st.get('attempts')}  Ray submission {st.get('submission_id')}"
            + (f"  last attempt {took:.0f} s" if took is not None else "")
        )
    assert {k: v["status"] for k, v in final.items()} == {j["id"]: "succeeded" for j in plan["jobs"]}
    assert final["train-p1"]["attempts"] == 2 and final["train-p1"]["submission_id"].endswith("-train-p1-2")
    assert str(jobs_api.get_job_status(first)).endswith("STOPPED")

    # What ran: the backend's own modules in each training job's log, its checkpoint layout, the exported folder.
    for job in ("train-p1", "train-p2", "export-final"):
        log = jobs_api.get_job_logs(final[job]["submission_id"])
        say(f"{job} log ({len(log)} chars), last lines:\n" + "\n".join(log.splitlines()[-15:]))
    layout = sorted(str(p.relative_to(run)) for p in (run / "checkpoints").rglob("*") if p.is_file())
    say("checkpoint layout:\n  " + "\n  ".join(layout[:60]))
    assert backend.checkpoint_done(run, 2) and backend.checkpoint_done(run, 3)
    exported = run / "models/final"
    say("exported model: " + ", ".join(sorted(p.name for p in exported.iterdir())))
    assert (exported / "config.json").exists()
    from transformers import AutoModelForCausalLM

    AutoModelForCausalLM.from_pretrained(exported)  # eval reads this folder

    # The registry: every table the run fills, training metrics under knowrl's canonical names.
    import duckdb

    con = duckdb.connect(str(shared / "registry.duckdb"), read_only=True)
    rid = plan["run_id"]
    count = lambda table: con.execute(f"SELECT count(*) FROM {table} WHERE run_id = ?", [rid]).fetchone()[0]  # noqa: E731
    say(
        "registry rows: "
        + ", ".join(f"{t} {count(t)}" for t in ("runs", "jobs", "metrics", "eval_samples", "eval_scores"))
    )
    assert count("runs") == 1 and count("jobs") == len(plan["jobs"])
    steps = con.execute(
        "SELECT step, count(*) FROM metrics WHERE run_id = ? AND name = ? GROUP BY 1 ORDER BY 1",
        [rid, "train/reward_after_filter"],
    ).fetchall()  # the reward over the samples trained on: the one every backend logs (verl's dapo: no pre-filter)
    say(f"train/reward_after_filter per step: {steps}")
    assert [s for s, _ in steps] == [1, 2, 3] and all(n == 1 for _, n in steps)
    names = [
        r[0] for r in con.execute("SELECT DISTINCT name FROM metrics WHERE run_id = ? ORDER BY 1", [rid]).fetchall()
    ]
    say("metric names: " + ", ".join(n for n in names if not n.startswith(RELEASES[BACKEND][0] + "/")))
    samples = con.execute(
        "SELECT checkpoint, hint_mode, count(*) FROM eval_samples WHERE run_id = ? GROUP BY 1, 2 ORDER BY 1, 2", [rid]
    ).fetchall()
    assert {(c, m) for c, m, _ in samples} == {(c, m) for c in ("base", "final") for m in ("css", "none")}
    assert all(n == 4 * 2 for _, _, n in samples)  # 4 problems x 2 samples
    con.close()
    table = knowrl("compare", rid, "--registry", str(shared / "registry.duckdb"), cwd=work).stdout
    say("knowrl compare:\n" + table)
    assert "final" in table and "base" in table


def test_a_cancelled_run_stays_cancelled(cluster, model, tmp_path):
    shared, work = tmp_path / "shared", tmp_path / "elsewhere"
    work.mkdir()
    args = ["run", str(ROOT / "experiments/css_main.yaml"), "--smoke", "--address", cluster.address, "--allow-dirty"]
    args += [*overrides(shared, model, rehearsal_data.write(shared / "data")), "seed=7"]
    knowrl(*args, "--detach", cwd=work)  # exit 0 asserted
    run = next((shared / "storage/runs").iterdir())
    storage = str(shared / "storage")
    wait_for("a job to run", lambda: any(s.get("active") for s in statuses(run).values()))
    c = knowrl("cancel", run.name, "--storage", storage, cwd=work)
    say(c.stdout.strip())
    for _ in range(3):
        knowrl("status", run.name, "--storage", storage, cwd=work)
    st = statuses(run)
    say("after cancel and three `knowrl status`: " + ", ".join(f"{k} {v['status']}" for k, v in sorted(st.items())))
    assert not any(v.get("active") for v in st.values())
    assert "cancelled" in {v["status"] for v in st.values()}
    assert all(v.get("attempts", 0) <= 1 for v in st.values()), st
