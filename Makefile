# The guide's commands. `make help` lists them.
# Only python3 (3.10+) and make are needed: every target builds the venv it uses.

PYTHON ?= python3
# Paths that `make clean` deletes come from make's command line only (`make VENV=...`), never from the
# environment: a reader who exports VENV for their own scripts must not lose that folder to `make clean`.
ifneq ($(origin VENV),command line)
VENV := .venv
endif
BIN := $(VENV)/bin
PORT ?= 5000
KEEP_SERVER ?= 1
# The REST server goes on the port after the tracking server's, so the two never meet:
# 5001 after the default 5000, 5002 after `make tutorial PORT=5001` (AirPlay holds 5000 on macOS).
SERVE_PORT ?= $(shell echo $$(($(PORT) + 1)))
MODEL ?= models:/tracking-iris-lr@champion
# The installer `make setup` uses, pinned like everything it installs.
UV_VERSION := 0.13.9
# Compile every module once, at install time (maintainer/docs/speed.md); `make bench BENCH_ARGS=--setup` measures both ways.
UV_COMPILE ?= --compile-bytecode

.DEFAULT_GOAL := help
.PHONY: help setup doctor tutorial serve batch-spark bench bench-serve screenshots test test-latest mutations lint lock clean clean-data

# `## text` after a target describes one of the guide's commands, `#m text` one of the maintainer's (CONTRIBUTING.md).
help: ## List the targets
	@echo "The guide's commands:"
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'
	@echo "  Switches: make tutorial PORT=5001 (port 5000 is AirPlay on macOS), KEEP_SERVER=0 (stop after the last step)"
	@echo "            make serve PORT=5001 (the tracking server's port; it serves on PORT+1), SERVE_PORT=5003,"
	@echo "            MODEL=models:/tracking-iris-lr/2 (another version)"
	@echo "            make doctor PORT=5001 (check the tracking server on another port)"
	@echo "            make setup PYTHON=python3.13 (another Python: the lock supports 3.10 to 3.14)"
	@echo "            make clean-data CONFIRM=1 (delete the tutorial's runs and models, after showing what)"
	@echo ""
	@echo "For who changes this repository (CONTRIBUTING.md):"
	@grep -E '^[a-z-]+:.*#m ' $(MAKEFILE_LIST) | awk -F':.*#m ' '{printf "  make %-12s %s\n", $$1, $$2}'

setup: $(VENV)/.installed ## Create .venv from requirements.txt

# Rebuilt when requirements.txt changes. uv installs the locked set several times faster than pip;
# --compile-bytecode saves seconds on every later `import mlflow`.
$(VENV)/.installed: requirements.txt
	@$(PYTHON) -m tutorial.check_python
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	$(BIN)/uv pip install --quiet --python $(BIN)/python $(UV_COMPILE) -r requirements.txt
	touch $@

# Spark, for `make batch-spark` and the tests: apart from requirements.txt, since pyspark is about 450 MB.
$(VENV)/.installed-spark: $(VENV)/.installed requirements-spark.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python $(UV_COMPILE) -r requirements-spark.txt
	touch $@

# The tests, `make lint` and `make screenshots` also need requirements-dev.txt (pytest, Playwright, pre-commit, ...),
# and the tests need Spark too.
$(VENV)/.installed-dev: $(VENV)/.installed-spark requirements-dev.txt
	$(BIN)/uv pip install --quiet --python $(BIN)/python $(UV_COMPILE) -r requirements-dev.txt
	touch $@

# Plain python3, like clean-data: it must run where .venv is missing or broken, to say so.
doctor: ## Check what the guide needs, one line each, with the fix for each problem
	@$(PYTHON) -m tutorial.doctor --port $(PORT) --venv $(VENV)

tutorial: $(VENV)/.installed ## Start the tracking server and run every step of the guide
	$(BIN)/python -m tutorial.run --port $(PORT) $(if $(filter 0,$(KEEP_SERVER)),--no-keep-server)

serve: $(VENV)/.installed ## Serve the champion over REST on port PORT+1, 5001 (needs the server of `make tutorial`)
	$(BIN)/python -m tutorial.serve --model-uri $(MODEL) --port $(SERVE_PORT) --tracking-port $(PORT)

batch-spark: $(VENV)/.installed-spark ## Score flowers.csv with the champion on Spark, local[*] (installs pyspark; Java 17+)
	$(BIN)/python -m tutorial.batch_spark --port $(PORT)

test: $(VENV)/.installed-dev ## Run the whole test suite
	$(BIN)/python -m pytest

clean: ## Remove what can be rebuilt: the venvs, caches and the server's log (your runs stay: see clean-data)
	rm -rf $(VENV) $(LATEST) mlflow-ui.log .pytest_cache .ruff_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +

# Plain python3, not the venv: it needs only the standard library, and works after `make clean` too.
clean-data: ## Delete the tutorial's runs, models and step 9's files (mlflow.db, mlartifacts/, flowers*): CONFIRM=1
	$(PYTHON) -m tutorial.clean_data --port $(PORT) $(if $(filter 1,$(CONFIRM)),--yes)

# ---- The maintainer's targets (CONTRIBUTING.md) ----

lint: $(VENV)/.installed-dev #m Check the code with the pre-commit hooks: ruff, and notebooks without outputs
	$(BIN)/pre-commit run --all-files

# requirements.in and requirements-dev.in name what the guide and the tests use; this pins those and everything
# they pull in, for Python 3.10 to 3.14 on every platform (--universal adds the markers). uv keeps the current
# pins where they still fit: add --upgrade to move everything to the newest releases.
LOCK := $(BIN)/uv pip compile --quiet --universal --python-version 3.10 --custom-compile-command "make lock"
lock: $(VENV)/.installed #m Re-pin requirements.txt, requirements-dev.txt and requirements-spark.txt from the .in files
	$(LOCK) requirements.in -o requirements.txt
	$(LOCK) requirements-dev.in -c requirements.txt -o requirements-dev.txt
	$(LOCK) requirements-spark.in -c requirements.txt -o requirements-spark.txt

# A maintainer's check that the guide still works when MLflow moves on: the same suite in .venv-latest,
# installed from the .in files with mlflow and scikit-learn unpinned (the newest releases), the other
# direct pins kept, and whatever those pull in resolved afresh. Not part of .ci/run.
ifneq ($(origin LATEST),command line)
LATEST := .venv-latest
endif
test-latest: #m Run the suite against the newest mlflow and scikit-learn, in .venv-latest
	rm -rf $(LATEST) && $(PYTHON) -m venv $(LATEST)
	$(LATEST)/bin/python -m pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)
	sed -E 's/^(mlflow|scikit-learn)==[^ ;]*/\1/' requirements.in > $(LATEST)/requirements.in
	cp requirements-dev.in $(LATEST)/requirements-dev.in
	$(LATEST)/bin/uv pip install --quiet --python $(LATEST)/bin/python --compile-bytecode \
		-r $(LATEST)/requirements-dev.in -r requirements-spark.in
	$(LATEST)/bin/uv pip freeze --python $(LATEST)/bin/python > $(LATEST)/requirements-installed.txt  # for make doctor
	touch $(LATEST)/.installed $(LATEST)/.installed-spark $(LATEST)/.installed-dev
	@$(MAKE) test VENV=$(LATEST); status=$$?; \
		$(LATEST)/bin/python -m maintainer.latest_versions $(LATEST)/requirements-installed.txt; exit $$status

mutations: $(VENV)/.installed-dev #m Break the code on purpose, one edit at a time, and check each edit fails its test
	$(BIN)/python -m maintainer.mutations

bench: $(VENV)/.installed-dev #m Measure the tutorial against the original guide (maintainer/docs/speed.md); BENCH_ARGS="--setup --suite" for more
	$(BIN)/python -m maintainer.bench $(BENCH_ARGS)

bench-serve: $(VENV)/.installed #m Measure the REST server (1-2 workers, 1-4 clients) and a switch of docs/serving.md
	$(BIN)/python -m maintainer.bench_serving

screenshots: $(VENV)/.installed-dev #m Remake images/ from a live run, in headless Chromium
	$(BIN)/python -m maintainer.screenshots
