"""Comparisons a researcher can trust: the paper's table shape, recomputed from per-sample rows.

Accuracy per (run, checkpoint, benchmark, hint mode) is the mean over problems
of each problem's mean correctness -- avg@N -- computed from `eval_samples`,
and a suite's Avg. is the unweighted mean over its benchmarks. Published
reference rows are shown beside measured ones, marked as published, with
their Avg. recomputed from the rounded per-benchmark numbers next to the
published Avg.
"""

from __future__ import annotations

from dataclasses import astuple, dataclass, field

from knowrl._errors import KnowrlError, UsageError
from knowrl.spec import KNOWRL8

BENCHMARKS = list(KNOWRL8)


@dataclass
class Row:
    label: str
    hint_mode: str
    values: dict[str, float]
    avg: float | None
    mean_kps: float | None
    source: str  # "measured" or "published"
    oracle: bool = False
    published_avg: float | None = None
    run_id: str | None = None
    """The measured run the row comes from (None for published rows)."""
    counts: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Per benchmark: (problems, samples per problem) behind the avg@N (measured rows only)."""


def noise(acc: float, problems: int, samples: int) -> float:
    """Standard error (in points) of an avg@N cell, Agresti-Coull over its problems x samples.

    Smoothed so that 0% and 100% still carry their uncertainty: 0 of 32 is not
    certainly 0.
    """
    n = problems * samples
    p = (acc / 100 * n + 2) / (n + 4)
    return 100 * (p * (1 - p) / (n + 4)) ** 0.5


def best_beyond_noise(cells: list[tuple[float, float]]) -> int | None:
    """Index of the cell (value, standard error) that beats every other by more than 1.96 SE of the difference."""
    if len(cells) < 2:
        return None
    top = max(range(len(cells)), key=lambda i: cells[i][0])
    v, se = cells[top]
    clear = all(v - w > 1.96 * (se**2 + e**2) ** 0.5 for i, (w, e) in enumerate(cells) if i != top)
    return top if clear else None


def resolve_runs(con, names: list[str] | None) -> list[tuple[str, str]]:
    """(run id, name) of the runs named by id, id prefix or name (all runs when none); a name shared by
    several runs (one spec on changed inputs is a new run) picks every one of them."""
    rows = con.execute("SELECT run_id, name FROM runs ORDER BY created_at, run_id").fetchall()
    if not names:
        return rows
    picked = [r for r in rows if r[0] in names or r[1] in names or any(r[0].startswith(n) for n in names)]
    missing = [n for n in names if not any(n in (r[0], r[1]) or r[0].startswith(n) for r in rows)]
    if missing:
        raise KnowrlError(f"no run named {', '.join(missing)} in the registry", hint="`knowrl runs` lists them")
    return picked


def resolve_run(con, ref: str) -> tuple[str, str]:
    """(run id, name) of the one run `ref` names: its id, else its name, else a prefix of its id.

    A name or prefix that fits several runs is refused, listing them, so that a
    comparison never silently picks one of them.
    """
    rows = con.execute(
        "SELECT run_id, name, spec_hash, status, created_at FROM runs ORDER BY created_at, run_id"
    ).fetchall()
    for fits, how in (
        (lambda r: r[0] == ref, "id"),
        (lambda r: r[1] == ref, "name"),
        (lambda r: r[0].startswith(ref), "id prefix"),
    ):
        found = [r for r in rows if fits(r)]
        if len(found) == 1:
            return found[0][0], found[0][1]
        if found:
            listed = "\n".join(
                f"  {rid}  name {name}  spec {spec[:12]}  {status}  created {created or '-'}"
                for rid, name, spec, status, created in found
            )
            raise UsageError(
                f"{len(found)} runs match the {how} '{ref}':\n{listed}",
                hint="name one by its run id (or a prefix that fits only it)",
            )
    raise KnowrlError(f"no run named {ref} in the registry", hint="`knowrl runs` lists them")


def measured_rows(
    con, runs: list[str] | None = None, hint_modes: list[str] | None = None, checkpoint: str | None = None
) -> list[Row]:
    picked = resolve_runs(con, runs)
    if not picked:
        return []
    ids = [r[0] for r in picked]
    names = dict(picked)
    data = con.execute(
        """
        WITH per_problem AS (
            SELECT run_id, checkpoint, benchmark, hint_mode, problem_id,
                   avg(correct::DOUBLE) AS acc, any_value(kps) AS kps, count(*) AS n
            FROM eval_samples WHERE run_id IN (SELECT unnest(?))
            GROUP BY ALL)
        SELECT run_id, checkpoint, benchmark, hint_mode, avg(acc), avg(kps), count(*), min(n),
               checkpoint_rank(checkpoint)
        FROM per_problem GROUP BY ALL
        """,
        [ids],
    ).fetchall()
    by: dict[tuple, dict] = {}
    for run_id, ckpt, bench, mode, acc, kps, problems, samples, rank in data:
        if checkpoint and ckpt != checkpoint:
            continue
        if hint_modes and mode not in hint_modes:
            continue
        entry = by.setdefault((run_id, ckpt, mode), {"values": {}, "kps": [], "counts": {}, "rank": rank})
        entry["values"][bench] = 100 * acc
        entry["kps"].append(kps)
        entry["counts"][bench] = (problems, samples)
    rows = []
    for (run_id, ckpt, mode), e in sorted(by.items(), key=lambda kv: (ids.index(kv[0][0]), kv[1]["rank"], kv[0][2])):
        vals = e["values"]
        rows.append(
            Row(
                f"{names[run_id]} ({run_id[:8]}) @{ckpt}",
                mode,
                vals,
                sum(vals.values()) / len(vals),
                sum(e["kps"]) / len(e["kps"]),
                "measured",
                mode.startswith("select:"),
                run_id=run_id,
                counts=e["counts"],
            )
        )
    return rows


def reference_rows(con, hint_modes: list[str] | None = None) -> list[Row]:
    data = con.execute(
        "SELECT table_name, model, hint_mode, benchmark, value, published_avg, mean_kps "
        "FROM reference_results ORDER BY source, table_name DESC, model"
    ).fetchall()
    by: dict[tuple, Row] = {}
    for table, model, mode, bench, value, pub, kps in data:
        if hint_modes and mode not in hint_modes:
            continue
        row = by.setdefault(
            (table, model, mode),
            Row(f"{model} ({table}, published)", mode, {}, None, kps, "published", published_avg=pub),
        )
        row.values[bench] = value
    for row in by.values():
        row.avg = sum(row.values.values()) / len(row.values)  # from the rounded published numbers
    return list(by.values())


@dataclass(frozen=True)
class Arm:
    """One side of a paired comparison: a run's evaluated checkpoint under one hint mode."""

    run_id: str
    checkpoint: str
    hint_mode: str

    def label(self) -> str:
        return f"{self.run_id[:8]}@{self.checkpoint} {self.hint_mode}"


def final_checkpoint(con, run_id: str) -> str:
    """The checkpoint a run's comparisons default to: its last evaluated one (`final` when evaluated)."""
    row = con.execute(
        "SELECT max_by(checkpoint, checkpoint_rank(checkpoint)) FROM eval_samples WHERE run_id = ?",
        [run_id],
    ).fetchone()
    return row[0] or "final"


def paired_bootstrap(con, run_a: str, run_b: str, hint_mode: str, *, samples: int = 2000, seed: int = 0) -> dict:
    """Per-benchmark deltas (B - A) of two runs' final checkpoints in one hint mode, and a 95% CI on the Avg."""
    a_id, _ = resolve_run(con, run_a)
    b_id, _ = resolve_run(con, run_b)
    a, b = Arm(a_id, final_checkpoint(con, a_id), hint_mode), Arm(b_id, final_checkpoint(con, b_id), hint_mode)
    return paired_arms(con, a, b, samples=samples, seed=seed) | {"a": a_id, "b": b_id, "hint_mode": hint_mode}


def paired_arms(con, a: Arm, b: Arm, *, samples: int = 2000, seed: int = 0) -> dict:
    """Per-benchmark deltas (B - A, points) and a 95% paired bootstrap CI on the Avg. difference.

    Problems are paired by (benchmark, problem id) and resampled within each
    benchmark, so the suite's unweighted Avg. is recomputed on every resample.
    """
    import numpy as np

    rows = con.execute(
        """
        WITH p AS (SELECT run_id, checkpoint, hint_mode, benchmark, problem_id, avg(correct::DOUBLE) AS acc
                   FROM eval_samples WHERE (run_id, checkpoint, hint_mode) IN ((?, ?, ?), (?, ?, ?)) GROUP BY ALL)
        SELECT a.benchmark, a.acc, b.acc FROM p a JOIN p b USING (benchmark, problem_id)
        WHERE (a.run_id, a.checkpoint, a.hint_mode) = (?, ?, ?) AND (b.run_id, b.checkpoint, b.hint_mode) = (?, ?, ?)
        ORDER BY a.benchmark, a.problem_id
        """,
        [*astuple(a), *astuple(b)] * 2,
    ).fetchall()
    if not rows:
        raise KnowrlError(f"{a.label()} and {b.label()} share no evaluated problems")
    benches = sorted({r[0] for r in rows})
    diffs = {bench: np.array([r[2] - r[1] for r in rows if r[0] == bench]) for bench in benches}
    rng = np.random.default_rng(seed)
    boot = np.zeros(samples)
    for bench in benches:
        d = diffs[bench]
        idx = rng.integers(0, len(d), size=(samples, len(d)))
        boot += d[idx].mean(axis=1)
    boot = 100 * boot / len(benches)
    delta = {bench: 100 * float(d.mean()) for bench, d in diffs.items()}
    return {
        "deltas": delta,
        "avg_delta": sum(delta.values()) / len(delta),
        "ci95": [float(np.percentile(boot, 2.5)), float(np.percentile(boot, 97.5))],
        "problems": len(rows),
    }


def within_run_effects(con, run_id: str) -> list[tuple[Arm, Arm, dict]]:
    """What a KnowRL run is for, each with its paired CI: training (each evaluated checkpoint vs the one before,
    base first and final last, per hint mode) and hints (each hint mode vs none, per checkpoint)."""
    found = con.execute(
        "SELECT DISTINCT checkpoint, hint_mode, checkpoint_rank(checkpoint) AS r FROM eval_samples WHERE run_id = ? "
        "ORDER BY r",
        [run_id],
    ).fetchall()
    arms = {(c, m) for c, m, _ in found}
    modes = sorted({m for _, m in arms}, key=lambda m: (m != "none", m))
    checkpoints = list(dict.fromkeys(c for c, _, _ in found))  # the registry's one checkpoint order
    pairs = [((c0, m), (c1, m)) for m in modes for c0, c1 in zip(checkpoints, checkpoints[1:], strict=False)]
    pairs = [(p, q) for p, q in pairs if p in arms and q in arms]
    pairs += [
        ((c, "none"), (c, m)) for c in checkpoints for m in modes if m != "none" and {(c, "none"), (c, m)} <= arms
    ]
    out = []
    for (c0, m0), (c1, m1) in pairs:
        a, b = Arm(run_id, c0, m0), Arm(run_id, c1, m1)
        out.append((a, b, paired_arms(con, a, b)))
    return out


def reward_sparsity(con, run_id: str) -> list[tuple[str, str, int, float, float]]:
    """(checkpoint, hint mode, problems, zero-correct share, all-correct share) from the registry's view."""
    return con.execute(
        "SELECT checkpoint, hint_mode, sum(problems)::INTEGER, sum(zero_correct * problems) / sum(problems), "
        "sum(all_correct * problems) / sum(problems) FROM reward_sparsity WHERE run_id = ? "
        "GROUP BY checkpoint, hint_mode ORDER BY checkpoint_rank(checkpoint), hint_mode <> 'none', hint_mode",
        [run_id],
    ).fetchall()
