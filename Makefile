# Two entry points: `make run` (the app) and `make test` (the suite). Each creates .venv on
# first use. torch/torchvision are pinned to the releases this project is tested with.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-slow clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet torch==2.14.1 torchvision==0.29.1
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/mnist-tui $(ARGS)

# The guard rails first (lint, format, the core's types; the import contract is a test),
# then every test but the slow ones, in two workers of one training thread each (pilot
# tests wait on the app half the time: two keep both cores busy). test-slow runs the slow
# ones, one at a time: each starts real mnist-tui processes (detached trainers, signals,
# torch.distributed), which pay torch's import and use every core. CI runs both. test-slow
# also runs the property tests again in Hypothesis's "slow" profile (tests/conftest.py).
test: $(STAMP)
	$(BIN)/ruff check mnist_tui tests benchmarks
	$(BIN)/ruff format --check mnist_tui tests benchmarks
	$(BIN)/mypy
	$(BIN)/python -m pytest -q -n 2 --dist worksteal -m "not slow"

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow
	HYPOTHESIS_PROFILE=slow $(BIN)/python -m pytest -q tests/test_properties.py

clean:
	rm -rf $(VENV) build *.egg-info
