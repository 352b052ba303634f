# The two commands the README promises: `make run` and `make test`. Each sets itself up on a
# fresh machine with Python 3.11: uv (installed with pip when missing) syncs .venv from uv.lock.
SHELL := /bin/bash
PYTHON ?= python3.11
UV := $(PYTHON) -m uv
# Compiled bytecode: without it every run recompiles its imports (seconds here).
export UV_COMPILE_BYTECODE := 1
# The Dagster instance is dagster.yaml in this folder; its storage lands in abalone_home/.
export DAGSTER_HOME := $(CURDIR)
# Offline machines (CI) have the UCI file in shared/ beside the checkout (or beside the checkout
# a local clone came from); elsewhere the pipeline downloads it.
ORIGIN := $(shell git config --get remote.origin.url 2>/dev/null)
SHARED_ABALONE := $(firstword $(wildcard $(abspath $(CURDIR)/../shared/data/abalone.data) \
	$(if $(ORIGIN),$(abspath $(ORIGIN)/../shared/data/abalone.data))))
ifeq ($(origin ABALONE_INPUT_DATA),undefined)
ifneq ($(SHARED_ABALONE),)
export ABALONE_INPUT_DATA := $(SHARED_ABALONE)
endif
endif
CONFIG ?=
# OpenMP threads (XGBoost's) sleep instead of spinning while they wait: on a shared machine a
# spinning thread whose partner is descheduled slowed training up to 10x (BENCHMARKS.md). Read
# when XGBoost loads; the same model and predictions bytes (checked). An explicit value is kept.
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: setup run dev test test-fast lint format bench clean

setup:
	@$(UV) --version >/dev/null 2>&1 || $(PYTHON) -m pip install --quiet --disable-pip-version-check uv
	@$(UV) sync --frozen --python $(PYTHON) --quiet

run: setup  ## run the pipeline once (CONFIG=configs/execution_approved.yaml for another execution)
	$(UV) run --frozen --no-sync dagster job execute -m abalone_platform -j abalone_pipeline $(if $(CONFIG),-c $(CONFIG))

dev: setup  ## the Dagster UI on http://127.0.0.1:3000
	$(UV) run --frozen --no-sync dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

# Two workers, one test file each at a time (module fixtures such as the MLflow server stay in
# one worker): most tests wait on a subprocess that keeps one core busy, so on 2 cores the suite
# takes ~13 min (529 tests on a fresh clone; one process took ~23 min on an earlier, smaller suite). PYTEST_WORKERS=0 runs
# everything in this process.
PYTEST_WORKERS ?= 2
test: setup
	$(UV) run --frozen --no-sync pytest -ra $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

# The loop while editing: everything not marked slow (see abalone_platform_tests/conftest.py).
test-fast: setup
	$(UV) run --frozen --no-sync pytest -q -m "not slow" $(if $(filter 0,$(PYTEST_WORKERS)),,-n $(PYTEST_WORKERS) --dist loadfile) $(PYTEST_ARGS)

lint: setup
	$(UV) run --frozen --no-sync ruff check .
	$(UV) run --frozen --no-sync ruff format --check .

format: setup
	$(UV) run --frozen --no-sync ruff format .
	$(UV) run --frozen --no-sync ruff check --fix .

bench: setup  ## figures beside their targets (not tests; about 45 minutes: 30M-row steps; BENCH_ARGS="--only default,load,cache" for some); updates BENCHMARKS.md
	$(UV) run --frozen --no-sync python -m bench $(BENCH_ARGS)

clean:
	rm -rf abalone_home .venv
