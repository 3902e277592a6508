"""Contract tests: knowrl's handoffs held against verl's own code, in verl's own environment (`make contract`).

They run with `.venv-verl/bin/python` (verl 0.9.1, its Hydra and OmegaConf,
antlr4 4.9.3), never with knowrl's main environment, which has no verl.
verl 0.4's configs come from the 0.4.1 wheel (`KNOWRL_VERL04_WHEEL`): its
pinned tensordict does not import beside torch 2.13, so only its config files
are used, composed by the same Hydra.
"""

from __future__ import annotations

import os
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
RECIPES = HERE / "verl"
sys.path.insert(0, str(HERE.parent))  # the grading table (tests/grading_cases.py) is shared with the main suite


def _trainer_config(release: str, dest: Path) -> None:
    if release == "0.9":
        import verl

        shutil.copytree(Path(verl.__file__).parent / "trainer" / "config", dest)
        return
    wheel = os.environ.get("KNOWRL_VERL04_WHEEL", "")
    if not Path(wheel).is_file():
        pytest.fail(f"KNOWRL_VERL04_WHEEL must name verl 0.4.1's wheel (got {wheel!r}); `make contract` fetches it")
    with zipfile.ZipFile(wheel) as z:
        for name in z.namelist():
            if name.startswith("verl/trainer/config/"):
                target = dest.parent.parent.parent / name
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(z.read(name))


@pytest.fixture
def verl_checkout(tmp_path):
    """A verl checkout's config layout for a release: `verl/trainer/config` + the DAPO recipe's config."""

    def make(release: str) -> Path:
        root = tmp_path / f"verl-{release}"
        _trainer_config(release, root / "verl" / "trainer" / "config")
        recipe = root / "recipe" / "dapo" / "config"
        recipe.mkdir(parents=True)
        shutil.copy(RECIPES / f"recipe-{release}.yaml", recipe / "dapo_trainer.yaml")
        return root

    return make
