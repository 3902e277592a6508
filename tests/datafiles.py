"""Small datasets in each published format, built by the tests (field names exactly as released)."""

from __future__ import annotations

import json
from pathlib import Path

SUFFIX = "Please reason step by step, and put your final answer within \\boxed{}."

KPS = [
    "**Knowledge Point**: Definition of the mode.\n   **Key Considerations**: A unique mode appears most often.",
    "**Knowledge Point**: Definition of the median.\n   **Key Considerations**: Middle element when sorted.",
    "  **Knowledge Point**: Parity of integer averages.\n   **Key Considerations**: Same parity sums are even.  ",
]

ANNOTATIONS = [
    {
        "dataset": "AIME24",
        "prompt": [{"content": "Find the sum of the squares.", "role": "user"}],
        "reward_model": {"ground_truth": "\\boxed{236}", "style": "rule"},
        "kp_list": KPS,
        "css_kept_kp_index": [0, 2],
        "css_selected_kps": [KPS[0], KPS[2]],
        "cbrs_kept_kp_index": [0, 1, 2],
        "cbrs_selected_kps": KPS,
    },
    {
        "dataset": "AIME24",
        "prompt": [{"content": "How many tokens?", "role": "user"}],
        "reward_model": {"ground_truth": "\\boxed{809}", "style": "rule"},
        "kp_list": KPS[:2],
        "css_kept_kp_index": [],
        "css_selected_kps": [],
        "cbrs_kept_kp_index": [1],
        "cbrs_selected_kps": [KPS[1]],
    },
    {
        "dataset": "Olympiad-Bench",
        "prompt": [{"content": "Solve $x^2=4$ for $x>0$.", "role": "user"}],
        "reward_model": {"ground_truth": "2", "style": "rule"},
        "kp_list": KPS[1:],
        "css_kept_kp_index": [1],
        "css_selected_kps": [KPS[2]],
        "cbrs_kept_kp_index": [],
        "cbrs_selected_kps": [],
    },
]


def hinted(problem: str, kps: list[str]) -> str:
    if not kps:
        return f"{problem}\n\n{SUFFIX}"
    return problem + "\n\n## Hint\n" + "\n".join(f"{i + 1}. {k.strip()}" for i, k in enumerate(kps)) + "\n\n" + SUFFIX


TRAIN = [
    {
        "data_source": "knowrl",
        "prompt": [{"role": "user", "content": hinted("What is $1+1$?", [KPS[0]])}],
        "reward_model": {"ground_truth": "2", "style": "rule"},
        "kp_list": KPS,
        "css_selected": [KPS[0]],
        "cbrs_selected": [KPS[0], KPS[1]],
    },
    {
        "data_source": "knowrl",
        "prompt": [{"role": "user", "content": hinted("What is $2+2$?", [])}],
        "reward_model": {"ground_truth": "4", "style": "rule"},
        "kp_list": KPS[:1],
        "css_selected": [],
        "cbrs_selected": [],
    },
]

TRAIN_KEPT = [
    {
        "data_source": "knowrl",
        "prompt": [{"role": "user", "content": hinted("Compute $3 \\cdot 3$.", [KPS[1]])}],
        "reward_model": {"ground_truth": "9", "style": "rule"},
        "kp_list": KPS,
        "kept_kp_index": [1],
    },
]

VERL = [
    {
        "prompt": [{"content": f"Find $xy$.\n\n{SUFFIX}", "role": "user"}],
        "data_source": "Maxwell-Jia/AIME_2024",
        "ability": "math",
        "reward_model": {"ground_truth": "25", "style": "rule"},
        "extra_info": {"index": 0, "split": "test"},
    },
    {
        "prompt": [{"content": f"Find $m+n$.\n\n{SUFFIX}", "role": "user"}],
        "data_source": "Maxwell-Jia/AIME_2024",
        "ability": "math",
        "reward_model": {"ground_truth": "113", "style": "rule"},
        "extra_info": {"index": 1, "split": "test"},
        "level": 5,
    },
]

PLAIN = [
    {"problem": "What is 6 times 7?", "answer": "42", "kp_list": ["Multiplication facts."], "id": "q1"},
    {"problem": "Half of 1?", "answer": "\\frac{1}{2}", "solution": "1/2."},
]


def write_jsonl(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_parquet(path: Path, records: list) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(records), path)
    return path
