#!/usr/bin/env bash
# Builds what a verl rehearsal runs on: the backend's own environment and a stand-in checkout.
#
#   tests/rehearsal/verl/build.sh ROOT RELEASE SRC
#
# ROOT     folder that receives   .venv-rehearsal-verl-RELEASE/  (the Python environment a Ray node runs)
#                                 .rehearsal/verl-RELEASE/       (the checkout `resources.backend_dir` points at)
# RELEASE  0.4  the KnowRL authors' verl fork (Hasuer/KnowRL bed9a05, its verl/ folder), Python 3.11 with their pins
#          0.9  verl 0.9.1 (its source distribution from PyPI) + verl-recipe at RECIPE_PIN as recipe/, CPU torch
# SRC      0.4: the fork's snapshot (knowrl-fork-bed9a05.tar.gz) or a clone of github.com/Hasuer/KnowRL
#          0.9: verl-recipe's history (verl-recipe.bundle) or a clone of github.com/verl-project/verl-recipe
#
# The checkout is the real source with the GPU-bound worker modules overlaid by tests/rehearsal/verl/standin-RELEASE/
# (README.md says which and why). knowrl itself is never installed into the environment: on a cluster its code arrives
# with each job's py_modules; only its runtime dependencies (pyproject.toml) are installed, beside the backend's pins.
# Idempotent: stamps record what each part was built from, and a part is rebuilt only when that changed.
set -euo pipefail

ROOT=${1:?usage: build.sh ROOT RELEASE SRC}
RELEASE=${2:?usage: build.sh ROOT RELEASE SRC}
SRC=${3:?usage: build.sh ROOT RELEASE SRC}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../../.." && pwd)
ROOT=$(mkdir -p "$ROOT" && cd "$ROOT" && pwd)
ENV=$ROOT/.venv-rehearsal-verl-$RELEASE
CHECKOUT=$ROOT/.rehearsal/verl-$RELEASE

FORK_COMMIT=bed9a053b6a40f5e1e44c3a21fdbe6cc9091fd32
VERL_09=0.9.1
# knowrl/backends/verl.py names the same commit (RECIPE_PIN); test_verl_backend.py holds the two equal.
RECIPE_PIN=ac8b84f74cf8cec08bb2ba2f73733c15bd6b8c43

case $RELEASE in
  0.4) PY=${PYTHON_311:-python3.11} ;;
  0.9) PY=${PYTHON_311:-python3.11} ;;
  *) echo "build.sh: RELEASE must be 0.4 or 0.9 (got '$RELEASE')" >&2; exit 2 ;;
esac

digest() { cat "$@" | sha256sum | cut -c1-16; }

# knowrl's runtime dependencies, read from pyproject.toml: the base list and the `local` extra (the transformers
# generator of eval/KP jobs) without TRL (the local trainer never runs on a verl cluster). math-verify comes without
# its antlr 4.13.2 extra: Hydra pins 4.9.3 here, and knowrl's reward parses with the run's grading site instead.
knowrl_deps() {
  "$ENV/bin/python" - "$REPO/pyproject.toml" <<'PY'
import re, sys, tomllib
project = tomllib.load(open(sys.argv[1], "rb"))["project"]
deps = project["dependencies"] + project["optional-dependencies"]["local"]
for d in deps:
    name = re.split(r"[\[<>=!~ ]", d, maxsplit=1)[0]
    if name == "trl":
        continue
    print(re.sub(r"^math-verify\[[^\]]*\]", "math-verify", d))
PY
}

backend_requirements() {
  if [[ $RELEASE == 0.4 ]]; then
    # The fork's install_requires plus what its code imports (the shared README's measured list); its own
    # `tensordict<=0.6.2` is not what the authors ran (their environment: 0.10.0).
    echo "torch ray[default] transformers tensordict numpy pyarrow pandas datasets torchdata hydra-core omegaconf" \
      "accelerate codetiming dill peft pybind11 pylatexenc wandb tensorboard math-verify openai packaging"
  else
    # verl 0.9.1 and the part of its `verl-core` extra that its PPO trainer imports (the LLM server router,
    # the reward loop's HTTP app): the base install leaves them out.
    echo "torch verl==$VERL_09 math-verify cachetools fastapi uvicorn"
  fi
}

build_env() {
  local constraints=$HERE/constraints-$RELEASE.txt
  local stamp=$ENV/.installed
  local want
  want="$(digest "$constraints" "$REPO/pyproject.toml") $(backend_requirements | sha256sum | cut -c1-16) $("$PY" -V 2>&1)"
  if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    return
  fi
  echo "build.sh: environment $ENV ($RELEASE)"
  rm -rf "$ENV"
  "$PY" -m venv "$ENV"
  "$ENV/bin/pip" install --quiet --upgrade pip
  # shellcheck disable=SC2046
  "$ENV/bin/pip" install --quiet -c "$constraints" $(backend_requirements) $(knowrl_deps | tr '\n' ' ')
  if (cd / && "$ENV/bin/python" -c "import knowrl" 2>/dev/null); then
    echo "build.sh: knowrl must not be importable in $ENV (it arrives through py_modules)" >&2
    exit 1
  fi
  echo "$want" >"$stamp"
}

fetch_source() {  # -> $CHECKOUT.src (pristine upstream tree)
  local src=$CHECKOUT.src
  rm -rf "$src" && mkdir -p "$src"
  if [[ $RELEASE == 0.4 ]]; then
    if [[ -f $SRC ]]; then
      tar -xzf "$SRC" -C "$src" --strip-components=1
    else
      git -C "$SRC" cat-file -e "$FORK_COMMIT^{commit}"
      git -C "$SRC" archive "$FORK_COMMIT" | tar -x -C "$src"
    fi
    [[ -d $src/verl/recipe/dapo ]] || { echo "build.sh: $SRC has no verl/recipe/dapo" >&2; exit 1; }
  else
    "$ENV/bin/pip" download --quiet --no-deps --no-binary :all: "verl==$VERL_09" -d "$src/.sdist"
    mkdir -p "$src/verl"
    tar -xzf "$src/.sdist/verl-$VERL_09.tar.gz" -C "$src/verl" --strip-components=1
    git clone --quiet "$SRC" "$src/recipe-git"
    git -C "$src/recipe-git" -c advice.detachedHead=false checkout --quiet "$RECIPE_PIN"
    rm -rf "$src/recipe-git/.git"
    mv "$src/recipe-git" "$src/verl/recipe"
  fi
}

build_checkout() {
  local stamp=$CHECKOUT/.built
  local want
  # shellcheck disable=SC2046
  want="$RELEASE $FORK_COMMIT $VERL_09 $RECIPE_PIN $(digest $(find "$HERE/standin-$RELEASE" "$HERE/standin-common" \
    -type f | sort)) $([[ -f $SRC ]] && digest "$SRC" || git -C "$SRC" rev-parse HEAD)"
  if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    return
  fi
  echo "build.sh: stand-in checkout $CHECKOUT ($RELEASE)"
  fetch_source
  rm -rf "$CHECKOUT"
  mv "$CHECKOUT.src/verl" "$CHECKOUT"
  rm -rf "$CHECKOUT.src"
  # The overlay: the same paths as the upstream modules they replace; upstream's originals are kept beside them
  # as `<name>.upstream` so the difference stays inspectable.
  (cd "$HERE/standin-common" && find . -type f) | while read -r f; do
    mkdir -p "$CHECKOUT/$(dirname "$f")" && cp "$HERE/standin-common/$f" "$CHECKOUT/$f"
  done
  (cd "$HERE/standin-$RELEASE" && find . -type f) | while read -r f; do
    [[ -f $CHECKOUT/$f ]] && mv "$CHECKOUT/$f" "$CHECKOUT/$f.upstream"
    mkdir -p "$CHECKOUT/$(dirname "$f")" && cp "$HERE/standin-$RELEASE/$f" "$CHECKOUT/$f"
  done
  echo "$want" >"$stamp"
}

build_env
build_checkout
echo "build.sh: verl $RELEASE ready: env $ENV, checkout $CHECKOUT"
