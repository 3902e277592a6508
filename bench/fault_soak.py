"""Fault soak: the quickstart killed N times at random points, resumed each time, ends as if never killed.

One uninterrupted `knowrl run` of the quickstart is the baseline. The soak
starts the same spec in another storage and registry and SIGKILLs the
driver's whole process group N times, resuming after each kill, then lets it
finish. Each cycle waits for a job to run -- one of a kind not yet killed
while there is one, else any the soak run can run now -- and kills at a
uniform moment within that job's baseline duration: the kills walk the DAG, landing in KP selection, training
and eval alike. The registries
are then compared table by table: the same rows (jobs and their states,
every metric step once, every eval sample, every KP selection) and the same
values. Run ids match because storage is not part of a run's identity.
Target: every table identical after N >= 5 kills, covering KP selection, training and eval.

    python bench/fault_soak.py            # N=5; KNOWRL_SOAK_KILLS=10 for more
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import report  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
KILLS = int(os.environ.get("KNOWRL_SOAK_KILLS", "5"))
TABLES = {
    "jobs": "SELECT job_id, kind, phase, status FROM jobs",
    "metrics": "SELECT job_id, step, name, round(value, 6) FROM metrics WHERE name NOT LIKE '%runtime%' "
    "AND name NOT LIKE '%per_second%' AND name NOT LIKE '%time%'",
    "eval_samples": "SELECT job_id, checkpoint, benchmark, problem_id, hint_mode, sample_index, correct, "
    "answer FROM eval_samples",
    "eval_scores": "SELECT job_id, checkpoint, benchmark, hint_mode, metric, round(value, 9) FROM eval_scores",
    "kp_selections": "SELECT problem_id, strategy, selected, est_chosen, est_empty, est_full FROM kp_selections",
}
ROLLOUTS = "SELECT sum(rollouts) FROM kp_selections"
"""New rollouts drawn (cache hits are free): a problem killed mid-selection counts only those drawn after the resume,
the ones before are in the rollout cache. Reported, not compared."""


def command(root: Path, model: Path, name: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "knowrl.cli",
        "run",
        str(ROOT / "experiments" / "quickstart-tiny.yaml"),
        f"model.path={model}",
        f"resources.storage={root / name}",
        f"registry.path={root / name / 'registry.duckdb'}",
        "tracking.backend=none",
    ]


def states(run: Path) -> dict[str, tuple[str, int]]:
    """job -> (status, attempts) as the run directory says now."""
    out = {}
    for f in run.glob("*/status.json"):
        status = json.loads(f.read_text())
        out[f.parent.name] = (status["status"], status.get("attempts", 0))
    return out


def started(run: Path, jobs: list[str], at_launch: dict[str, tuple[str, int]]) -> list[str]:
    """Those of `jobs` an attempt newer than at launch runs: a killed attempt's "running" is stale."""
    now = states(run)
    return [j for j in jobs if j in now and now[j][0] == "running" and now[j][1] > at_launch.get(j, ("", 0))[1]]


def rows(registry: Path) -> dict[str, list]:
    from knowrl.registry import reader

    with reader(registry) as con:
        out = {t: sorted(map(tuple, con.execute(q).fetchall()), key=repr) for t, q in TABLES.items()}
        out["rollouts"] = con.execute(ROLLOUTS).fetchone()[0]
        return out


def main() -> None:
    from knowrl.generation import build_tiny_model
    from knowrl.plan import plan
    from knowrl.spec import load_spec

    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        model = build_tiny_model(root / "tiny", seed=0)

        def launch(name: str) -> tuple[subprocess.Popen, Path]:
            cmd = command(root, model, name)
            run = root / name / "runs" / plan(load_spec(cmd[4], cmd[5:])).run_id
            out = subprocess.DEVNULL
            return subprocess.Popen(cmd, cwd=ROOT, stdout=out, stderr=out, start_new_session=True), run

        proc, run = launch("baseline")
        if proc.wait():
            sys.exit("the uninterrupted run failed")
        deps = {j["id"]: j["depends_on"] for j in json.loads((run / "manifest.json").read_text())["plan"]["jobs"]}
        took = {}
        for f in run.glob("*/status.json"):
            a, b = json.loads(f.read_text())["summary"]["work_interval"]
            took[f.parent.name] = b - a
        kills, killed_kinds, t0 = [], set(), time.perf_counter()
        for _ in range(KILLS):
            proc, run = launch("soak")
            at_launch = states(run)
            done = {j for j, (st, _) in at_launch.items() if st == "succeeded"}
            left = sorted(j for j in took if j not in done and set(deps[j]) <= done)
            if not left:
                proc.wait()
                kills.append("nothing left to kill")
                continue
            # A kind not yet killed first, even one still waiting on others (training waits for KP selection):
            # kills among what can run now alone would keep landing in the job that gates it.
            fresh = [j for j in took if j not in done and j.split("-")[0] not in killed_kinds]
            pool = fresh or left
            while proc.poll() is None and not (running := started(run, pool, at_launch)):
                time.sleep(0.02)
            if proc.poll() is not None:
                kills.append("finished before a kill")
                continue
            job = rng.choice(running)
            delay = rng.uniform(0, took[job])
            try:
                proc.wait(timeout=delay)
                kills.append(f"{job}: finished before +{delay:.1f} s")
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                kills.append(f"{job} +{delay:.1f} s")
                killed_kinds.add(job.split("-")[0])
        final = subprocess.run(command(root, model, "soak"), cwd=ROOT, capture_output=True, text=True)
        soak_s = time.perf_counter() - t0
        if final.returncode:
            sys.exit(f"the resumed run failed:\n{final.stdout[-3000:]}\n{final.stderr[-3000:]}")
        want, got = rows(root / "baseline" / "registry.duckdb"), rows(root / "soak" / "registry.duckdb")
    table = []
    for t in TABLES:
        same = sum(a == b for a, b in zip(want[t], got[t], strict=False))
        table.append([t, len(want[t]), len(got[t]), same, "yes" if want[t] == got[t] else "NO"])
    identical = all(want[t] == got[t] for t in TABLES)
    landed = sum(" +" in k and "finished" not in k for k in kills)
    report(
        f"fault soak: quickstart killed at random points ({'; '.join(kills)}), then resumed",
        ["table", "rows (uninterrupted)", "rows (killed + resumed)", "equal rows", "identical"],
        table,
        {
            "bench": "fault_soak",
            "ratio": round(sum(want[t] == got[t] for t in TABLES) / len(TABLES), 3),
            "baseline": "an uninterrupted run of the same spec, same invocation; ratio: the share of identical tables",
            "kills": KILLS,
            "kills_during_jobs": landed,
            "kinds_killed": sorted(killed_kinds),
            "kill_points": kills,
            "job_durations_s": {j: round(t, 1) for j, t in sorted(took.items())},
            "soak_s": round(soak_s, 1),
            "tables_identical": {t: want[t] == got[t] for t in TABLES},
            "kp_rollouts_counted": [want["rollouts"], got["rollouts"]],
            "target": "every registry table identical to the uninterrupted run's after >= 5 kills",
            "met": identical and landed >= 5 and killed_kinds >= {"kp_select", "train", "eval"},
        },
    )


if __name__ == "__main__":
    main()
