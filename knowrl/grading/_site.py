"""The ANTLR runtime math-verify must parse with, kept apart from Hydra's.

math-verify's LaTeX parser (latex2sympy2_extended) ships one generated parser
per ANTLR runtime and picks it by the installed `antlr4-python3-runtime`.
knowrl's verdicts are defined with 4.13.2; NeMo-RL and verl bring Hydra 1.3 and
OmegaConf 2.3, which pin 4.9.*, and there the parser grades some answers
differently (percentages: `\\boxed{0.5}` against gold `50\\%`). Both runtimes
cannot be installed in one environment, so the grader's worker processes put a
*grading site* -- a folder holding only antlr4-python3-runtime 4.13.2 -- first
on their path (`KNOWRL_GRADER_SITE`), and every grader checks, once, which
runtime its workers parse with and refuses any other.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from knowrl._errors import KnowrlError

ANTLR = "antlr4-python3-runtime"
REQUIRED = "4.13.2"
SITE_ENV = "KNOWRL_GRADER_SITE"


def antlr_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(ANTLR)
    except PackageNotFoundError:
        return ""


def activate(site: str | None) -> None:
    """In a fresh grading worker: parse with the site's runtime, whatever this environment has installed."""
    if not site:
        return
    import importlib

    for name in [m for m in sys.modules if m.split(".")[0] in ("antlr4", "latex2sympy2_extended", "math_verify")]:
        del sys.modules[name]  # a forked worker inherits a parent's 4.9 runtime if Hydra already imported it
    sys.path.insert(0, site)
    importlib.invalidate_caches()


def refuse_other(found: str) -> None:
    if found != REQUIRED:
        raise KnowrlError(
            f"math-verify in this environment parses with {ANTLR} {found or '(none)'}, not {REQUIRED}: its verdicts "
            "would differ from knowrl's (Hydra and OmegaConf pin 4.9.*)",
            hint=f"point {SITE_ENV} at a folder holding {ANTLR}=={REQUIRED} alone (`knowrl grading-site DIR` "
            f"builds one, or `pip install --target DIR {ANTLR}=={REQUIRED}`)",
        )


def site_ready(dest: Path) -> bool:
    """True if `dest` already holds antlr4-python3-runtime 4.13.2."""
    from importlib.metadata import distributions

    return any(d.version == REQUIRED for d in distributions(name=ANTLR, path=[str(dest)]))


def build_site(dest: Path) -> Path:
    """Copy antlr4-python3-runtime 4.13.2 (pure Python) into `dest`: this env's, else `$KNOWRL_GRADER_SITE`'s.

    A `dest` that already holds it is kept: on a cluster the submitting machine
    builds the run's site (knowrl's environment has 4.13.2), and the data job,
    on a node whose Hydra pins 4.9, finds it there.
    """
    from importlib.metadata import distributions

    if site_ready(dest):
        return dest
    paths = [os.environ[SITE_ENV]] if antlr_version() != REQUIRED and os.environ.get(SITE_ENV) else sys.path
    dist = next((d for d in distributions(name=ANTLR, path=paths)), None)
    if dist is None or dist.version != REQUIRED:
        refuse_other(dist.version if dist else "")
    tmp = dest.with_name(dest.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    for f in dist.files or []:
        src = Path(dist.locate_file(f))
        if src.is_file() and "__pycache__" not in f.parts and ".." not in f.parts:  # not its bin/pygrun script
            (tmp / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, tmp / f)
    shutil.rmtree(dest, ignore_errors=True)
    os.replace(tmp, dest)
    return dest
