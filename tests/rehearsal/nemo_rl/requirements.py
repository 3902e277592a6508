"""The rehearsal environment's requirements: NeMo-RL v0.7.0's own dependencies, at its uv.lock's versions.

Usage: python requirements.py NEMO_RL_SOURCE KNOWRL_PYPROJECT OUT_DIR
Writes OUT_DIR/requirements.txt (what to install) and OUT_DIR/constraints.txt
(every other package pinned as NeMo-RL's uv.lock pins it), so the environment
is NeMo-RL's own resolution wherever it can be installed on a CPU machine.

Left out of NeMo-RL's base dependencies, each for a stated reason (LEFT_OUT):
torch is PyPI's 2.13.0 (installed first by build.sh; for cp313 the CUDA build,
which runs on the CPU), so everything built against torch 2.11 or CUDA 13
drivers stays out. knowrl's own runtime dependencies are added (its code comes
through the job's py_modules, as on a cluster), except the antlr 4.13.2 extra
of math-verify: NeMo-RL's Hydra pins antlr 4.9, and knowrl's grader takes
4.13.2 from its grading site instead.
"""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

LEFT_OUT = {
    "torch": "PyPI's torch==2.13.0 instead of the lock's 2.11.0+cu130 (installed first)",
    "triton": "comes with torch 2.13.0 at its own version",
    "torchvision": "0.26.0 is built for torch 2.11; only vision-language models use it",
    "timm": "needs torchvision (vision-language models)",
    "open-clip-torch": "needs torchvision (vision-language models)",
    "nvidia-nvshmem-cu13": "GPU refit transport",
    "nvidia-cudnn-cu13": "torch 2.13.0 brings the cuDNN it was built with",
    "nccl4py": "non-colocated GPU refit",
    "cuda-bindings": "non-colocated GPU refit",
    "tilelang": "GPU kernels (mamba)",
    "transferqueue": "git-only; used only by the data_plane trainer (data_plane.enabled: false)",
    "mooncake-transfer-engine-cuda13": "data_plane's mooncake backend, CUDA 13 only",
}
"""NeMo-RL v0.7.0 base dependencies that are not installed, and why."""

NOT_CONSTRAINED = re.compile(r"^(torch|triton|nvidia-.*|cuda-.*)$")
"""Lock pins torch 2.13.0 brings at its own versions."""


def _name(requirement: str) -> str:
    return re.split(r"[ <>=;\[@!~]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def main(source: str, knowrl_pyproject: str, out: str) -> None:
    src, dest = Path(source), Path(out)
    nemo = tomllib.loads((src / "pyproject.toml").read_text())["project"]["dependencies"]
    lock = tomllib.loads((src / "uv.lock").read_text())["package"]
    knowrl = tomllib.loads(Path(knowrl_pyproject).read_text())["project"]["dependencies"]
    versions: dict[str, set[str]] = {}
    for p in lock:
        if "version" in p:
            versions.setdefault(p["name"], set()).add(p["version"])
    wanted = [r for r in nemo if _name(r) not in LEFT_OUT]
    wanted += [re.sub(r"\[antlr4_13_2\]", "", r) for r in knowrl]
    wanted.append("uv")  # the launcher NeMo-RL's container runs (`uv run python ...`)
    pins = [
        f"{n}=={next(iter(v))}"
        for n, v in sorted(versions.items())
        if len(v) == 1 and not NOT_CONSTRAINED.match(n) and n not in LEFT_OUT
    ]
    transformers = sorted(versions.get("transformers", ()), key=lambda v: [int(x) for x in v.split(".")])
    pins.append(f"transformers=={transformers[-1]}")  # the base resolution's (the others belong to extras)
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "requirements.txt").write_text("".join(f"{r}\n" for r in wanted))
    (dest / "constraints.txt").write_text("".join(f"{p}\n" for p in pins))


if __name__ == "__main__":
    main(*sys.argv[1:4])
