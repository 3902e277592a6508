"""Synthetic arithmetic problems with knowledge points, for the offline quickstart and tests.

Each problem is a small integer expression; its KPs are the operation facts it
needs (one or two are relevant, the others are distractors), so hints can
genuinely help and KP selection has something to find.
"""

from __future__ import annotations

import random

FACTS = {
    "+": "**Knowledge Point**: Addition of integers.\n   **Key Considerations**: add the ones, then the tens.",
    "-": "**Knowledge Point**: Subtraction of integers.\n   **Key Considerations**: the result can be negative.",
    "*": "**Knowledge Point**: Multiplication of integers.\n   **Key Considerations**: a times b is a added b times.",
    "order": "**Knowledge Point**: Order of operations.\n   **Key Considerations**: multiply before adding.",
}
DISTRACTORS = [
    "**Knowledge Point**: Area of a circle.\n   **Key Considerations**: pi times the radius squared.",
    "**Knowledge Point**: Prime factorisation.\n   **Key Considerations**: every integer > 1 has one.",
    "**Knowledge Point**: Pythagorean theorem.\n   **Key Considerations**: only for right triangles.",
]


def arithmetic_problems(n: int, seed: int = 0, start: int = 0) -> list[dict]:
    """`n` records in the plain format (problem, answer, kp_list, id)."""
    rng = random.Random(seed)
    out = []
    for i in range(start, start + n):
        a, b, c = rng.randint(1, 9), rng.randint(1, 9), rng.randint(1, 5)
        op = rng.choice(["+", "-", "*"])
        if rng.random() < 0.3:
            expr, value, needed = f"{a} + {b} * {c}", a + b * c, ["+", "*", "order"]
        else:
            expr, value, needed = f"{a} {op} {b}", {"+": a + b, "-": a - b, "*": a * b}[op], [op]
        kps = [FACTS[k] for k in needed] + rng.sample(DISTRACTORS, rng.randint(1, 2))
        rng.shuffle(kps)
        out.append(
            {
                "id": f"arith-{i}",
                "benchmark": "arith",
                "problem": f"What is {expr}?",
                "answer": str(value),
                "kp_list": kps,
            }
        )
    return out
