# The guide's commands. `make help` lists them.
# Only python3 (3.10+) and make are needed: every target builds the venv it uses.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
KEEP_SERVER ?= 1

.DEFAULT_GOAL := help
.PHONY: help setup tutorial test lint clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  Switches: make tutorial PORT=5001 (port 5000 is AirPlay on macOS), KEEP_SERVER=0 (stop after the last step)"

setup: $(VENV)/.installed ## Create .venv from requirements.txt

# Rebuilt when requirements.txt changes. uv installs the pinned set several times faster than pip;
# --compile-bytecode saves seconds on every later `import mlflow`.
$(VENV)/.installed: requirements.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' || \
		{ echo "error: the guide needs Python 3.10 or newer; '$(PYTHON)' is $$($(PYTHON) --version 2>&1)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv
	$(BIN)/uv pip install --quiet --python $(BIN)/python --compile-bytecode -r requirements.txt
	touch $@

tutorial: $(VENV)/.installed ## Start the tracking server and run every step of the guide
	$(BIN)/python scripts/run_tutorial.py --port $(PORT) $(if $(filter 0,$(KEEP_SERVER)),--no-keep-server)

test: $(VENV)/.installed ## Run the whole test suite
	$(BIN)/python -m pytest

lint: $(VENV)/.installed ## Check the code's style with ruff (settings in pyproject.toml)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean: ## Remove the venv and the tutorial's data (mlflow.db, mlartifacts/)
	rm -rf $(VENV) mlflow.db mlartifacts mlflow-ui.log .pytest_cache
