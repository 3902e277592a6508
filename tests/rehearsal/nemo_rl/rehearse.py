"""css_main on NeMo-RL v0.7.0, job by job through a two-node Ray cluster's Jobs API, as knowrl submits it.

    python tests/rehearsal/nemo_rl/rehearse.py ROOT WORK [--knowrl-run]   (knowrl's env; ROOT as given to build.sh)

`knowrl compile experiments/css_main.yaml OVERRIDES` (from WORK, not the
checkout) writes the run directory and `submit.json`: for each job exactly the
request `knowrl.backends._submission.submission` makes. This sends data,
train-p1 (2 steps), train-p2 (1 step, resuming p1's checkpoint) and the export
to a cluster of NeMo-RL's own environment (../cluster.py), unchanged, and checks
between them what each left behind: the data rendered on Python 3.13, a DCP
checkpoint per step in NeMo-RL's layout that `checkpoint_done` reads as
NeMo-RL's CheckpointManager does, p2 resuming from step 2, TensorBoard files,
and the converter's Hugging Face folder loading with transformers in both
environments. The overrides shrink the model, data, steps and eval only.
Prints each job's submission id, state and wall time; writes WORK/report.json.
With `--knowrl-run`, `knowrl run ... --address` then runs the whole plan (its
preflight, eval, ingest and compare included) on the same cluster, as a user
would, into WORK/storage.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
KNOWRL = HERE.parents[2]
sys.path[:0] = [str(HERE), str(HERE.parent)]

import data as rehearsal_data  # noqa: E402
from cluster import started  # noqa: E402
from jobs import requests, run  # noqa: E402
from scripted_model import build as build_scripted  # noqa: E402


def overrides(work: Path, checkout: Path, files: dict[str, Path]) -> list[str]:
    """The shrinking profile: model, data, steps and eval; the backend, its release and everything else as css_main."""
    return [
        "resources.backend=nemo_rl",
        f"resources.backend_dir={checkout}",
        "resources.nodes=2",
        "resources.gpus_per_node=2",
        f"model.path={work / 'model'}",
        f"data.train=[{{source: {files['train']}, format: knowrl-train}}]",
        f"data.validation=[{{source: {files['validation']}, format: knowrl-annotations, name: aime24}}]",
        "algorithm.prompts_per_step=2",
        "algorithm.generation_batch_size=4",
        "algorithm.samples_per_prompt=4",
        "algorithm.mini_batch_size=2",
        "algorithm.max_prompt_length=256",
        "algorithm.max_response_length=32",
        "algorithm.total_steps=3",
        "algorithm.clip_schedule=[{step: 2, high: 0.26}]",
        "algorithm.save_every=1",
        "algorithm.validate_every=2",
        "eval.suite=null",
        f"eval.benchmarks=[{{name: aime25, source: {files['eval']}, format: knowrl-annotations, samples: 2}}]",
        "eval.hint_modes=[none]",
        "eval.sampling.max_tokens=32",
        "eval.generator=transformers",
    ]


def say(msg: str) -> None:
    print(f"[rehearsal {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def sh(cmd: list[str], **kw) -> str:
    return subprocess.run(cmd, check=True, capture_output=True, text=True, **kw).stdout


LOADS = """
import sys, transformers
from transformers import AutoModelForCausalLM, AutoTokenizer
m, tok = AutoModelForCausalLM.from_pretrained(sys.argv[1]), AutoTokenizer.from_pretrained(sys.argv[1])
ids = tok.apply_chat_template([{"role": "user", "content": "What is 2 + 3?"}], add_generation_prompt=True,
                              return_tensors="pt", return_dict=True)
out = m.generate(**ids, max_new_tokens=16, do_sample=False, pad_token_id=tok.pad_token_id)
print(f"transformers {transformers.__version__}: {type(m).__name__} answers",
      repr(tok.decode(out[0, ids["input_ids"].shape[1]:], skip_special_tokens=True)))
"""


def main(root: Path, work: Path, knowrl_run: bool = False) -> None:
    from knowrl.backends.nemo_rl import checkpoint_done

    venv, rehearsal = root / ".venv-rehearsal-nemo_rl", root / ".rehearsal" / "nemo_rl"
    checkout, run_dir = rehearsal / "checkout", work / "run"
    report: dict = {"jobs": {}, "started": time.strftime("%Y-%m-%dT%H:%M:%S")}
    t0 = time.monotonic()
    say("inputs: the rehearsal's data and scripted tiny model (../data.py, ../scripted_model.py)")
    files = rehearsal_data.write(work / "data")
    sh([sys.executable, "-m", "knowrl.cli", "model", "tiny", "--out", str(work / "tiny")])
    build_scripted(work / "tiny", work / "model")
    say("knowrl compile experiments/css_main.yaml with the shrinking overrides (from the work folder)")
    sh([sys.executable, "-m", "knowrl.cli", "compile", str(KNOWRL / "experiments" / "css_main.yaml"),
        *overrides(work, checkout, files), "--out", str(run_dir)], cwd=work)  # fmt: skip
    reqs = requests(run_dir)
    attempt = f"r{int(time.time())}"
    with started(venv, work / "ray-logs", node_env=rehearsal / "node.env") as cluster:
        say(f"two-node Ray cluster up at {cluster.address} (logical GPUs 2 + 2, NeMo-RL's environment)")
        for job in ("data", "train-p1", "train-p2", "export-final"):
            state, seconds, logs = run(cluster.address, reqs[job], attempt, work / "logs")
            sid = f"{reqs[job]['submission_id']}-{attempt}"
            report["jobs"][job] = {"submission_id": sid, "state": state, "seconds": round(seconds, 1)}
            say(f"{job}: {state} in {seconds:.0f} s ({sid})")
            if state != "SUCCEEDED":
                print(logs[-6000:])
                raise SystemExit(f"{job} did not succeed; its log: {work / 'logs' / (sid + '.log')}")
            if job == "train-p1":
                assert checkpoint_done(run_dir, 2) and not checkpoint_done(run_dir, 3)
                assert "Running initial validation" in logs and "Detected" in logs  # validate(), dynamic sampling
            if job == "train-p2":
                assert "loaded from" in logs and "step_2/policy/weights/model" in logs  # resumed through NeMo-RL
                assert checkpoint_done(run_dir, 3)
        if knowrl_run:
            say("knowrl run experiments/css_main.yaml OVERRIDES --address (the whole plan, as a user runs it)")
            start = time.monotonic()
            cmd = [sys.executable, "-m", "knowrl.cli", "run", str(KNOWRL / "experiments" / "css_main.yaml"),
                   *overrides(work, checkout, files), f"resources.storage={work / 'storage'}",
                   "--address", cluster.address, "--allow-dirty"]  # fmt: skip
            out = subprocess.run(cmd, cwd=work, capture_output=True, text=True)
            (work / "logs" / "knowrl-run.log").write_text(out.stdout + out.stderr)
            report["knowrl_run"] = {"returncode": out.returncode, "seconds": round(time.monotonic() - start, 1)}
            say(f"knowrl run: exit {out.returncode} in {time.monotonic() - start:.0f} s")
            print(out.stdout[-4000:], out.stderr[-2000:], sep="\n")
            assert out.returncode == 0
    ckpt = sorted(str(p.relative_to(run_dir)) for p in (run_dir / "checkpoints").rglob("*") if p.is_file())
    report["checkpoint_files"] = ckpt
    events = run_dir.glob("train-p*/logs/exp_*/tensorboard/*")
    report["tensorboard"] = sorted(str(p.relative_to(run_dir)) for p in events)
    say(f"checkpoints: {len(ckpt)} files, e.g. " + ", ".join(c for c in ckpt if c.startswith("checkpoints/step_3")))
    model = run_dir / "models" / "final"
    report["export"] = sorted(p.name for p in model.iterdir())
    report["loads"] = [
        sh([sys.executable, "-c", LOADS, str(model)]).strip(),
        sh([str(venv / "bin" / "python"), "-c", LOADS, str(model)]).strip(),
    ]
    say(f"exported {model}: {report['export']}; " + "; ".join(report["loads"]))
    env = {"PYTHONPATH": str(KNOWRL), "PATH": "/usr/bin:/bin"}
    report["checkpoint_manager"] = sh([str(venv / "bin" / "python"), str(HERE / "check_checkpoints.py"),
                                       str(work / "checkpoint-manager")], env=env).strip().splitlines()  # fmt: skip
    say(report["checkpoint_manager"][-1])
    report["seconds"] = round(time.monotonic() - t0, 1)
    (work / "report.json").write_text(json.dumps(report, indent=2))
    say(f"done in {report['seconds']:.0f} s; report in {work / 'report.json'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve(), "--knowrl-run" in sys.argv[3:])
