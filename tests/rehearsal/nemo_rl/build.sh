#!/usr/bin/env bash
# Build the NeMo-RL rehearsal: NeMo-RL v0.7.0's own Python environment and a stand-in checkout.
#
#   tests/rehearsal/nemo_rl/build.sh ROOT NEMO_SRC
#
# NEMO_SRC is NeMo-RL v0.7.0 as a .tar.gz (`git archive --prefix nemo-rl/`) or a folder (a clone of tag v0.7.0).
# Creates, idempotently (each step stamped, redone only when its inputs change):
#   ROOT/.venv-rehearsal-nemo_rl       Python 3.13 (pyenv), PyPI torch==2.13.0, NeMo-RL's dependencies at its uv.lock's
#                                      versions (requirements.py says which are left out and why), knowrl's runtime
#                                      dependencies (not knowrl: on a cluster its code arrives in the job's py_modules),
#                                      PyPI's uv (the launcher NeMo-RL's containers run) and the checkout's nemo_rl,
#                                      installed editable as `uv sync` installs the project.
#   ROOT/.rehearsal/nemo_rl/checkout   NeMo-RL's real source with the GPU-bound modules replaced by the CPU stand-ins
#                                      under overlay/ (README.md in this folder lists them).
#   ROOT/.rehearsal/nemo_rl/node.env   the environment a node of this "image" runs with (sourced by the rehearsal).
set -euo pipefail

if [ $# -ne 2 ]; then
    echo "usage: $0 ROOT NEMO_SRC (a NeMo-RL v0.7.0 .tar.gz or folder)" >&2
    exit 2
fi
ROOT=$(mkdir -p "$1" && cd "$1" && pwd)
SRC=$2
HERE=$(cd "$(dirname "$0")" && pwd)
KNOWRL=$(cd "$HERE/../../.." && pwd)
VENV=$ROOT/.venv-rehearsal-nemo_rl
WORK=$ROOT/.rehearsal/nemo_rl
PY_VERSION=${KNOWRL_REHEARSAL_PYTHON:-3.13.0}
TORCH=torch==2.13.0
mkdir -p "$WORK"

digest() { sha256sum | cut -c1-16; }
source_id() {  # what identifies NEMO_SRC: a tarball's content, or a folder's commit (else its file list and times)
    if [ -f "$SRC" ]; then sha256sum "$SRC" | cut -c1-16
    elif git -C "$SRC" rev-parse HEAD >/dev/null 2>&1; then git -C "$SRC" rev-parse HEAD
    else (cd "$SRC" && find . -path ./.git -prune -o -type f -printf '%P %T@\n' | sort | digest); fi
}

# 1. NeMo-RL's pristine source.
want=$(source_id)
if [ "$(cat "$WORK/source.stamp" 2>/dev/null)" != "$want" ]; then
    echo "[build] NeMo-RL source from $SRC"
    rm -rf "$WORK/source" "$WORK/source.tmp" && mkdir -p "$WORK/source.tmp"
    if [ -f "$SRC" ]; then tar -xzf "$SRC" -C "$WORK/source.tmp" --strip-components=1
    else (cd "$SRC" && tar --exclude=.git -cf - .) | tar -xf - -C "$WORK/source.tmp"; fi
    test -f "$WORK/source.tmp/examples/run_grpo.py" || { echo "$SRC is not a NeMo-RL checkout" >&2; exit 2; }
    mv "$WORK/source.tmp" "$WORK/source"
    echo "$want" > "$WORK/source.stamp"
fi

# 2. The stand-in checkout: the source with overlay/ copied over it.
want=$( (cat "$WORK/source.stamp"; cd "$HERE/overlay" && find . -type f -not -name '*.pyc' | sort | xargs sha256sum) | digest)
if [ "$(cat "$WORK/checkout.stamp" 2>/dev/null)" != "$want" ]; then
    echo "[build] stand-in checkout"
    rm -rf "$WORK/checkout.tmp" "$WORK/checkout"
    cp -a "$WORK/source" "$WORK/checkout.tmp"
    (cd "$HERE/overlay" && find . -type f -not -name '*.pyc' -not -path '*/__pycache__/*' -print0 \
        | xargs -0 -I{} install -D -m 0644 {} "$WORK/checkout.tmp/{}")
    mv "$WORK/checkout.tmp" "$WORK/checkout"
    echo "$want" > "$WORK/checkout.stamp"
fi

# 3. NeMo-RL's environment on Python 3.13.
if [ ! -x "$VENV/bin/python" ]; then
    echo "[build] Python $PY_VERSION venv at $VENV"
    PYENV_VERSION=$PY_VERSION python3.13 -m venv "$VENV"
fi
"$VENV/bin/python" "$HERE/requirements.py" "$WORK/source" "$KNOWRL/pyproject.toml" "$WORK/pins"
want=$( (echo "$TORCH"; cat "$WORK/pins/requirements.txt" "$WORK/pins/constraints.txt") | digest)
if [ ! -f "$VENV/.installed-$want" ]; then
    echo "[build] installing $TORCH and NeMo-RL's dependencies (uv.lock versions)"
    start=$(date +%s)
    rm -f "$VENV"/.installed-*  # unfinished until the new stamp is written (the Makefile shares finished envs' files)
    "$VENV/bin/pip" install --quiet --upgrade pip
    "$VENV/bin/pip" install --quiet "$TORCH"
    "$VENV/bin/pip" install --quiet -c "$WORK/pins/constraints.txt" -r "$WORK/pins/requirements.txt" "$TORCH"
    touch "$VENV/.installed-$want"
    echo "[build] environment installed in $(( $(date +%s) - start )) s"
fi

# 4. NeMo-RL itself, editable from the checkout, as `uv sync` installs the project in NeMo-RL's image (scripts such as
#    examples/converters/convert_dcp_to_hf.py import nemo_rl from anywhere). pip is told to ignore requires-python
#    (>=3.13.13; this is 3.13.0) and to add no dependency: they are all installed above.
if [ "$(cat "$VENV/.nemo_rl-editable" 2>/dev/null)" != "$WORK/checkout" ]; then
    "$VENV/bin/pip" install --quiet --no-deps --no-build-isolation --ignore-requires-python -e "$WORK/checkout"
    echo "$WORK/checkout" > "$VENV/.nemo_rl-editable"
fi

# 5. A node's environment, as NeMo-RL's NGC container sets it (docker/Dockerfile.ngc_pytorch): `uv run` uses the
#    image's environment as the project environment and never syncs it (NeMo-RL's pyproject asks for Python
#    >=3.13.13: without UV_NO_SYNC uv would fetch that Python and resolve uv.lock, git dependencies included).
#    knowrl's grading site (antlr 4.13.2; NeMo-RL's Hydra pins 4.9) is not the node's: `knowrl run` builds it in
#    the run directory on the shared storage and names it in every job's env.
cat > "$WORK/node.env" <<ENV
export PATH="$VENV/bin:\$PATH"
export UV_PROJECT_ENVIRONMENT="$VENV"
export UV_NO_SYNC=1
ENV

echo "[build] ready: $VENV ($(du -sh "$VENV" | cut -f1)), checkout $WORK/checkout"
