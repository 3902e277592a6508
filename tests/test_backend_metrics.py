"""knowrl's training-metric names mean one thing on every backend, read from real TensorBoard event files.

Each test rolls out one toy DAPO step -- generation batches of prompt groups
with known rewards, lengths and truncation -- and writes what each backend
logs for it, tag by tag and in the order it logs them, with torch's
`SummaryWriter` (what NeMo-RL's `TensorboardLogger` and verl's `Tracking`
use). How each backend computes a scalar follows its pinned source: NeMo-RL
v0.7.0 `nemo_rl/algorithms/grpo.py` (dynamic_sampling, grpo_train), the
KnowRL authors' fork bed9a05 `verl/recipe/dapo/dapo_ray_trainer.py`, and
verl-recipe's `dapo/dapo_ray_trainer.py` on verl 0.9.1's `metric_utils`.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

import pytest

from knowrl.runtime import _backend_metrics as bm

MAX_LEN = 16  # the response length limit; a truncated sample has exactly this many tokens
N = 4  # samples per prompt


@dataclass(frozen=True)
class Group:
    rewards: tuple[int, ...]
    lengths: tuple[int, ...]

    @property
    def mixed(self) -> bool:  # the filter keeps groups whose rewards differ (std > 0)
        return len(set(self.rewards)) > 1


def group(rewards: str, lengths: tuple[int, ...] = (4, 6, 8, 10)) -> Group:
    return Group(tuple(int(c) for c in rewards), lengths)


# One step of the paper's setting, scaled down: 2 prompts per step, generation batches of 4 prompts
# (batch_multiplier 2 / gen_batch_size 4). The first batch keeps one mixed group, the second two more.
BATCHES = [
    [
        group("0000", (MAX_LEN,) * 4),
        group("1111"),
        group("1000", (MAX_LEN, 5, 6, 7)),
        group("0000", (MAX_LEN, 3, 3, 3)),
    ],
    [group("0000"), group("1100"), group("0111", (2, 2, 2, MAX_LEN)), group("1111", (9, 9, 9, 9))],
]
PROMPTS = 2
ENTROPY, MINI_BATCHES = 0.7, 2  # the policy's entropy on the trained tokens; optimizer steps per step


def samples(groups):
    return [(r, n) for g in groups for r, n in zip(g.rewards, g.lengths, strict=True)]


def mean(xs):
    return statistics.fmean(xs)


def generated(batches=BATCHES):
    """What the step generated before the filter: the quantities knowrl's unsuffixed names mean."""
    groups = [g for b in batches for g in b]
    s = samples(groups)
    return {
        "reward": mean(r for r, _ in s),
        "length": mean(n for _, n in s),
        "truncated": mean(n == MAX_LEN for _, n in s),
        "zero": sum(not any(g.rewards) for g in groups) / len(groups),  # the local trainer's own count
        "all": sum(all(g.rewards) for g in groups) / len(groups),
    }


def trained(batches=BATCHES, prompts=PROMPTS):
    """The groups the update trains on: the mixed ones, in order, trimmed to the step's prompts."""
    return [g for b in batches for g in b if g.mixed][:prompts]


def nemo_rl_writes(batches=BATCHES, dynamic_sampling=True):
    """(tag, value) in the order NeMo-RL v0.7.0's grpo_train logs them for one step."""
    out = []
    cache, unfiltered = [], []
    for b in batches:
        s = samples(b)
        rollout = [  # run_multi_turn_rollout's rollout_metrics, logged per generation batch (grpo.py:2411)
            ("train/mean_gen_tokens_per_sample", mean(n for _, n in s)),
            ("train/truncation_rate", mean(n == MAX_LEN for _, n in s)),
        ]
        out += rollout
        kept = [g for g in b if g.mixed] if dynamic_sampling else b
        if kept:  # dynamic_sampling keeps total_reward unfiltered and concatenates it (grpo.py:1326, 1338)
            cache += kept
            unfiltered += [r for r, _ in samples(b)]
        if len(cache) >= PROMPTS or not dynamic_sampling:
            break
    # .slice(0, train_prompts_size) cuts every key, total_reward too (grpo.py:1374); without the filter the
    # generation batch is the step's batch (batch_multiplier 1)
    train = cache[:PROMPTS] if dynamic_sampling else cache
    baselines = [mean(g.rewards) for g in train for _ in g.rewards]  # no leave-one-out: knowrl compiles it off
    step = [
        ("train/loss", 0.1),
        ("train/reward", mean(unfiltered[: len(train) * N])),  # grpo.py:2831, after the filter ran
        ("train/baseline_reward/pct_0", 100 * mean(b == 0 for b in baselines)),  # grpo.py:1983, filtered batch
        ("train/baseline_reward/pct_1", 100 * mean(b == 1 for b in baselines)),
        ("train/approx_entropy", ENTROPY * MINI_BATCHES),  # one token-mean per mini-batch, summed (grpo.py:2858)
        ("train/num_valid_samples", len(train) * N),  # summed over micro-batches
        ("train/global_valid_seqs", len(train) * N / MINI_BATCHES),  # averaged: one mini-batch's samples
    ]
    if dynamic_sampling:
        step += [
            ("train/filtered_reward", mean(r for r, _ in samples(train))),  # grpo.py:2830
            ("train/dynamic_sampling_num_gen_batches", len(out) // 2),
            ("train/dynamic_sampling_num_discarded_valid_samples", (len(cache) - PROMPTS) * N),
        ]
    step += rollout  # metrics.update(rollout_metrics): the last generation batch again (grpo.py:2862)
    step += [("validation/accuracy", 0.25)]
    return out + step


def verl_writes(batches=BATCHES, fork=True, filter_groups=True):
    """(tag, value) as verl's DAPO trainer logs one step: the fork (0.4) or verl-recipe's dapo on 0.9.1."""
    n_batches, kept, wrong, right = 0, [], 0, 0
    for b in batches:
        n_batches += 1
        if not filter_groups:
            kept = list(b)
            break
        wrong += sum(not any(g.rewards) for g in b)  # the fork only (dapo_ray_trainer.py:197-207)
        right += sum(all(g.rewards) for g in b)
        kept += [g for g in b if g.mixed]
        if len(kept) >= PROMPTS:
            break
    passed = len(kept) if filter_groups else 0
    train = kept[:PROMPTS] if filter_groups else kept
    s = samples(train)
    tags = [  # compute_data_metrics on the filtered, trimmed batch; entropy from compute_log_prob on it
        ("actor/entropy", ENTROPY),
        ("actor/pg_clipfrac", 0.05),
        ("critic/score/mean", mean(r for r, _ in s)),
        ("critic/rewards/mean", mean(r for r, _ in s)),
        ("response_length/mean", mean(n for _, n in s)),
        ("response_length/clip_ratio", mean(n == MAX_LEN for _, n in s)),
        ("train/num_gen_batches", n_batches),
    ]
    if fork:
        tags += [
            ("train/passed_num", passed),
            ("train/all_wrong_num_prompt_in_batch", wrong),
            ("train/all_correct_num_prompt_in_batch", right),
            ("train/gen_batch_size", len(batches[0])),
        ]
    return tags


def local_values(batch):
    """What the local trainer writes for one step (TRL's logs as train/<key>, and its own group counts)."""
    s, g = samples(batch), generated([batch])
    return {
        "train/reward": mean(r for r, _ in s),
        "train/entropy": ENTROPY,
        "train/clip_ratio/region_mean": 0.05,
        "train/completions/mean_length": mean(n for _, n in s),
        "train/completions/clipped_ratio": mean(n == MAX_LEN for _, n in s),
        "train/zero_correct_groups": g["zero"],
        "train/all_correct_groups": g["all"],
        "train/correct_fraction": mean(r for r, _ in s),
    }


def collected(tmp_path, backend, *runs, step=1):
    """Write each run's (tag, value) list as one event file (a resumed phase writes another), then collect."""
    import pyarrow.parquet as pq
    from torch.utils.tensorboard import SummaryWriter

    job = tmp_path / "train-p1"
    for i, writes in enumerate(runs):
        w = SummaryWriter(log_dir=str(job / "logs" / f"exp_{i:03d}" / "tensorboard"))
        for tag, value in writes:
            w.add_scalar(tag, value, step)
        w.close()
    assert bm.collect(job, backend, phase=1) > 0
    rows = pq.read_table(job / "metrics.parquet").to_pylist()
    return {r["name"]: r["value"] for r in rows if r["step"] == step}


def canonical(rows):
    return {k: v for k, v in rows.items() if k in bm.DEFINITIONS}


def test_zero_correct_groups_is_counted_before_the_filter(tmp_path):
    """The training-side reward sparsity: every generated group, never the filtered batch (where it is 0)."""
    truth = generated()
    assert truth["zero"] == 3 / 8 and truth["all"] == 2 / 8
    fork = collected(tmp_path / "fork", "verl", verl_writes())
    assert fork["train/zero_correct_groups"] == pytest.approx(truth["zero"])
    assert fork["train/all_correct_groups"] == pytest.approx(truth["all"])

    nemo = collected(tmp_path / "nemo", "nemo_rl", nemo_rl_writes())
    assert nemo["nemo_rl/train/baseline_reward/pct_0"] == 0.0  # taken after the filter: mixed groups only
    assert "train/zero_correct_groups" not in nemo and "train/all_correct_groups" not in nemo

    (one_batch,) = BATCHES[:1]  # no dynamic sampling: the baselines are every generated group's mean
    plain = collected(tmp_path / "plain", "nemo_rl", nemo_rl_writes([one_batch], dynamic_sampling=False))
    local = bm.canonical_values("local", local_values(one_batch))
    assert plain["train/zero_correct_groups"] == pytest.approx(local["train/zero_correct_groups"]) == 0.5
    assert plain["train/all_correct_groups"] == pytest.approx(local["train/all_correct_groups"]) == 0.25


def test_train_reward_is_before_the_filter_and_the_trained_mean_has_its_own_name(tmp_path):
    after = mean(r for r, _ in samples(trained()))
    assert after == 0.375 and generated()["reward"] == pytest.approx(14 / 32)
    for name, writes in (("fork", verl_writes()), ("recipe", verl_writes(fork=False))):
        rows = collected(tmp_path / name, "verl", writes)
        assert rows["verl/critic/score/mean"] == after
        assert rows["train/reward_after_filter"] == after
        assert "train/reward" not in rows  # verl logs no score of the unfiltered samples

    nemo = collected(tmp_path / "nemo", "nemo_rl", nemo_rl_writes())
    assert nemo["train/reward_after_filter"] == pytest.approx(after)
    # NeMo-RL's own `reward` is unfiltered: the first prompts_per_step x n samples generated
    assert nemo["train/reward"] == pytest.approx(mean(r for r, _ in samples(BATCHES[0][:PROMPTS]))) == 0.5

    (one_batch,) = BATCHES[:1]
    plain = collected(tmp_path / "plain", "nemo_rl", nemo_rl_writes([one_batch], dynamic_sampling=False))
    assert (
        plain["train/reward"] == plain["train/reward_after_filter"] == pytest.approx(generated([one_batch])["reward"])
    )


def test_the_forks_counts_are_not_read_when_its_filter_is_off(tmp_path):
    """With `filter_groups.enable=False` the fork logs its counters as 0 without counting anything."""
    (one_batch,) = BATCHES[:1]
    rows = collected(tmp_path, "verl", verl_writes([one_batch], filter_groups=False))
    assert rows["verl/train/all_wrong_num_prompt_in_batch"] == 0.0 and rows["verl/train/passed_num"] == 0.0
    assert "train/zero_correct_groups" not in rows and "train/all_correct_groups" not in rows
    truth = generated([one_batch])
    assert rows["train/reward"] == rows["train/reward_after_filter"] == pytest.approx(truth["reward"])
    assert rows["train/truncated_fraction"] == pytest.approx(truth["truncated"])


def test_nemo_rl_entropy_is_a_per_token_mean_as_on_verl(tmp_path):
    """NeMo-RL sums one token-mean per optimizer mini-batch: the raw value is MINI_BATCHES times the entropy."""
    nemo = collected(tmp_path / "nemo", "nemo_rl", nemo_rl_writes())
    verl = collected(tmp_path / "verl", "verl", verl_writes())
    assert nemo["nemo_rl/train/approx_entropy"] == pytest.approx(ENTROPY * MINI_BATCHES)
    assert nemo["train/entropy"] == pytest.approx(verl["train/entropy"]) == pytest.approx(ENTROPY)


def test_nemo_rl_lengths_and_truncation_cover_every_generation_batch(tmp_path):
    """Logged once per generation batch and again with the step: knowrl averages the batches, not the repeat."""
    truth = generated()
    assert truth["truncated"] == pytest.approx(7 / 32)
    rows = collected(tmp_path, "nemo_rl", nemo_rl_writes())
    assert rows["nemo_rl/train/truncation_rate"] == pytest.approx(1 / 16)  # the last batch's, as logged
    assert rows["train/truncated_fraction"] == pytest.approx(truth["truncated"])
    assert rows["train/response_length"] == pytest.approx(truth["length"])
    assert rows["train/generation_batches"] == 2
    assert "train/truncated_fraction_after_filter" not in rows  # NeMo-RL logs no length of the trained batch

    verl = collected(tmp_path / "verl", "verl", verl_writes())  # verl: only the trained batch's
    after = samples(trained())
    assert verl["train/truncated_fraction_after_filter"] == pytest.approx(mean(n == MAX_LEN for _, n in after))
    assert verl["train/response_length_after_filter"] == pytest.approx(mean(n for _, n in after))
    assert "train/truncated_fraction" not in verl and "train/response_length" not in verl


@pytest.mark.parametrize(
    "release",
    ["local", "nemo_rl", "verl 0.4", "verl 0.9"],
)
def test_each_release_gives_every_name_but_those_it_says_it_does_not(tmp_path, release):
    """With dynamic sampling on (the paper's setting; local has none): NOT_LOGGED is the whole gap."""
    if release == "local":
        names = set(bm.canonical_values("local", local_values(BATCHES[0])))
    elif release == "nemo_rl":
        names = set(canonical(collected(tmp_path, "nemo_rl", nemo_rl_writes())))
    else:
        names = set(canonical(collected(tmp_path, "verl", verl_writes(fork=release == "verl 0.4"))))
    assert names == set(bm.DEFINITIONS) - set(bm.NOT_LOGGED[release])


def test_every_name_is_defined_and_in_the_modules_table():
    targets = {name for table in bm.CANONICAL.values() for name in table.values()}
    gaps = {name for table in bm.NOT_LOGGED.values() for name in table}
    assert targets | gaps <= set(bm.DEFINITIONS)
    table = bm.__doc__.split("\n")
    for name in bm.DEFINITIONS:
        assert any(line.strip().startswith(name) for line in table), f"{name} is not in the module's table"


def test_a_resumed_phase_takes_each_step_from_its_last_file(tmp_path):
    """A retried phase logs its first step again in a new exp_NNN folder: the later file wins, as a whole."""
    first = nemo_rl_writes()
    second = nemo_rl_writes([BATCHES[1], BATCHES[0]])
    rows = collected(tmp_path, "nemo_rl", first, second)
    again = collected(tmp_path / "again", "nemo_rl", second)
    assert rows == again
    assert rows["train/reward"] != collected(tmp_path / "once", "nemo_rl", first)["train/reward"]


def test_a_torn_last_record_ends_the_file(tmp_path):
    """A writer killed mid-record leaves a partial frame: the scalars before it are kept."""
    rows = collected(tmp_path, "verl", verl_writes(fork=False))  # its last scalar: train/num_gen_batches
    (event,) = (tmp_path / "train-p1").rglob("events.out.tfevents.*")
    event.write_bytes(event.read_bytes()[:-5])
    bm.collect(tmp_path / "train-p1", "verl", phase=1)
    import pyarrow.parquet as pq

    torn = {r["name"] for r in pq.read_table(tmp_path / "train-p1" / "metrics.parquet").to_pylist()}
    assert torn == set(rows) - {"verl/train/num_gen_batches", "train/generation_batches"}
