#!/usr/bin/env bash
# knowrl as a user installs it: build the wheel from this checkout, install it into a fresh venv with knowrl's
# core dependencies only, and from a folder outside the checkout run validate, plan, `registry load-reference`,
# ingest (of a finished run the installed package writes itself), query and compare.
# Everything knowrl reads at run time must ship in the wheel. Usage: tests/wheel_check.sh [PYTHON]
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
PYTHON=${1:-${PYTHON:-python3}}
WORK=$(mktemp -d "${TMPDIR:-/tmp}/knowrl-wheel.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
say() { printf '\n== %s\n' "$*"; }

say "build the wheel from a clean copy of the sources (no stale build/ folder can leak into it)"
mkdir "$WORK/src"
(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard | xargs -0 -I{} sh -c 'test -e "{}" && printf "%s\0" "{}"' \
  | tar --null -T - -cf -) | tar -xf - -C "$WORK/src"
"$PYTHON" -m pip wheel --quiet --no-deps "$WORK/src" -w "$WORK/dist"
WHEEL=$(ls "$WORK"/dist/knowrl-*.whl)

say "install $(basename "$WHEEL") into a fresh venv (core dependencies, from the pip cache where it has them)"
"$PYTHON" -m venv "$WORK/venv"
"$WORK/venv/bin/pip" install --quiet "$WHEEL"
K="$WORK/venv/bin/knowrl"
PY="$WORK/venv/bin/python"

mkdir "$WORK/elsewhere"
cd "$WORK/elsewhere"
"$PY" - <<'PY'
import knowrl, pathlib, sys
where = pathlib.Path(knowrl.__file__).resolve()
assert "site-packages" in where.parts, f"knowrl imported from {where}, not from the installed wheel"
print(f"knowrl from {where.parent}")
PY

say "a spec and its data, here"
"$PY" - <<'PY'
import json
from pathlib import Path

from knowrl.spec import KNOWRL8

Path("data").mkdir()
for bench in KNOWRL8:
    with open(f"data/{bench}.jsonl", "w") as f:
        for i in range(3):
            f.write(json.dumps({"dataset": bench, "prompt": [{"role": "user", "content": f"what is {i} + 1?"}],
                                "reward_model": {"ground_truth": str(i + 1)},
                                "kp_list": ["Adding one gives the next number."], "css_kept_kp_index": [0]}) + "\n")
Path("spec.yaml").write_text(
    "name: wheel\nseed: 1\nmodel: {path: m}\ndata: {train: [{source: data}]}\n"
    "algorithm: {total_steps: 4, save_every: 2, prompts_per_step: 8, mini_batch_size: 8}\n"
    "eval: {data: data, hint_modes: [none], samples: {AIME24: 2}}\n"
    "resources: {storage: store}\n"
)
PY
"$K" validate spec.yaml
"$K" plan spec.yaml

say "a finished run: every job succeeded, the eval jobs' artifacts written by knowrl's own eval"
"$PY" - <<'PY'
from pathlib import Path

from knowrl.eval import EvalRequest, builtin_suite, run_eval
from knowrl.generation import Completion
from knowrl.plan import plan
from knowrl._rundir import run_path, write_manifest, write_status
from knowrl.spec import load_spec


class Right:  # answers every problem correctly: `i + 1`
    model_id = "right"

    def generate(self, prompts, params, n, seeds):
        out = []
        for messages, row in zip(prompts, seeds, strict=True):
            i = int(messages[0]["content"].split("what is ", 1)[1].split(" ", 1)[0])
            out.append([Completion(f"</think> \\boxed{{{i + 1}}}", 5, "stop", s) for s in row])
        return out

    def close(self):
        pass


spec = load_spec(Path("spec.yaml"))
p = plan(spec)
run = run_path(spec.resources.storage, p.run_id)
write_manifest(run, spec, p)
for job in p.jobs:
    if job.kind == "eval":
        suite = builtin_suite("knowrl8", "data").subset([job.params["benchmark"]])
        run_eval(Right(), EvalRequest(suite, [job.params["hint_mode"]], limit=None), run / job.id)
    write_status(run, job, "succeeded", attempts=1, started_at="2026-12-01T10:00:00+00:00",
                 finished_at="2026-12-01T10:05:00+00:00")
Path("run-dir").write_text(str(run))
PY

say "the registry, from the installed package's migrations and reference table"
"$K" registry load-reference --registry reg.duckdb
"$K" ingest "$(cat run-dir)" --registry reg.duckdb
"$K" query "SELECT (SELECT count(*) FROM eval_samples) AS samples, (SELECT count(*) FROM reference_results) AS published, (SELECT max(version) FROM schema_version) AS schema, (SELECT status FROM runs) AS status" \
  --registry reg.duckdb --format csv | tee query.csv
"$K" compare --registry reg.duckdb --with-reference --format json > compare.json
"$PY" - <<'PY'
import csv, json

(row,) = csv.DictReader(open("query.csv"))
assert int(row["samples"]) > 0 and int(row["published"]) > 0 and row["status"] == "done", row
measured = [r for r in json.load(open("compare.json")) if "published" not in r["run"]]
assert measured and all(r["avg"] == 100.0 for r in measured), measured  # every answer right
print(f"ok: {row['samples']} samples, {row['published']} published values, schema {row['schema']}; "
      f"compare Avg. {measured[0]['avg']}")
PY
say "wheel check passed"
