"""`uv run python -m knowrl.backends.nemo_rl_launch examples/run_grpo.py --config CFG`: NeMo-RL with knowrl's reward.

NeMo-RL builds each dataset's environment by name from its `ENV_REGISTRY`, and
starts every Ray actor with the Python its `ACTOR_ENVIRONMENT_REGISTRY` names;
a custom environment must be in both before `run_grpo.py` sets up its data.
This launcher registers knowrl's environment in the driver process, then runs
NeMo-RL's own entry script unchanged, as `__main__`, with the remaining
arguments. Run from the NeMo-RL checkout, with knowrl on the PYTHONPATH (the
job's `py_modules`).
"""

from __future__ import annotations

import os
import runpy
import sys

ACTOR = "knowrl.backends.nemo_rl_env.KnowrlMathEnvironment"


def driver_environment() -> None:
    """The driver's environment as NeMo-RL's own `ray job submit` launch leaves it.

    A Ray job that asks for entrypoint resources runs its driver under an
    actor given no GPUs, and Ray sets `CUDA_VISIBLE_DEVICES=""` there. NeMo-RL's
    `init_ray` hands the driver's whole environment to every actor of the job,
    so each GPU worker would start believing it has no GPU and fail in Ray's
    own accelerator setup (`IndexError` in `get_accelerator_ids`). Without
    entrypoint resources -- NeMo-RL's way -- Ray leaves the variable unset.
    """
    if os.environ.get("CUDA_VISIBLE_DEVICES") == "":
        del os.environ["CUDA_VISIBLE_DEVICES"]


def register() -> None:
    from nemo_rl.distributed.ray_actor_environment_registry import ACTOR_ENVIRONMENT_REGISTRY
    from nemo_rl.distributed.virtual_cluster import PY_EXECUTABLES
    from nemo_rl.environments.utils import ENV_REGISTRY, register_env

    from knowrl.backends.nemo_rl import ENV_NAME

    if ENV_NAME not in ENV_REGISTRY:
        register_env(ENV_NAME, ACTOR)
    # The driver's Python (`uv run`'s): its packages are checked by `nemo_rl.requirements` before the run starts.
    ACTOR_ENVIRONMENT_REGISTRY[ACTOR] = PY_EXECUTABLES.SYSTEM


def main(argv: list[str]) -> None:
    if not argv:
        raise SystemExit("usage: python -m knowrl.backends.nemo_rl_launch examples/run_grpo.py --config CFG")
    driver_environment()
    register()
    sys.argv = list(argv)
    runpy.run_path(argv[0], run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
