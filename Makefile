# Fresh-machine entry points. `make test` and `make quickstart` set up first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS ?= dev,local,ray

.PHONY: setup test quickstart lint bench schema clean

setup: $(VENV)/.installed-$(EXTRAS)

$(VENV)/.installed-$(EXTRAS): pyproject.toml constraints/cpu.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints/cpu.txt -e ".[$(EXTRAS)]" --config-settings editable_mode=compat
	touch $@

test: setup
	$(BIN)/python -m pytest

quickstart: setup
	$(BIN)/knowrl model tiny --out .knowrl/models/tiny-qwen2
	$(BIN)/knowrl run experiments/quickstart.yaml

lint: setup
	$(BIN)/ruff check knowrl tests bench

bench: setup
	for b in bench/*.py; do case $$b in */_*) ;; *) $(BIN)/python $$b || exit 1;; esac; done

schema: setup
	$(BIN)/knowrl schema

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
