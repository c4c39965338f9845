# Two entry points: `make run` (the app) and `make test` (the suite). Each creates .venv on
# first use. torch/torchvision are pinned to the releases this project is tested with.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

# Which build of torch: TORCH=cuda (PyPI's default wheels, about 5 GB of CUDA libraries) or
# TORCH=cpu (PyTorch's CPU-only wheels, a few hundred MB); by default cuda where nvidia-smi
# lists an NVIDIA GPU, else cpu. An existing .venv whose torch satisfies the pins is kept
# (pip asks no index then, so CI runs offline): `make clean` first to switch builds.
TORCH ?= $(shell nvidia-smi -L >/dev/null 2>&1 && echo cuda || echo cpu)
ifeq ($(filter cpu cuda,$(TORCH)),)
$(error TORCH must be cpu or cuda, not '$(TORCH)')
endif
TORCH_WHY := $(if $(filter file,$(origin TORCH)),nvidia-smi $(if $(filter cuda,$(TORCH)),lists,lists no) NVIDIA GPU,TORCH=$(TORCH) given)
# PyTorch's documented CPU index, asked only when it answers within 5 s; where it cannot be
# reached (an offline machine, a registry mirror only), pip takes the pins from the
# configured indexes (PyPI: the CUDA build) and make says so, before and after.
CPU_INDEX := https://download.pytorch.org/whl/cpu/

.PHONY: run test test-slow clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "make: asking for torch's $(TORCH) build ($(TORCH_WHY); TORCH=cpu|cuda chooses)"
	@index=""; if [ "$(TORCH)" = cpu ]; then \
	  if $(BIN)/python -c "import urllib.request as u; u.urlopen('$(CPU_INDEX)', timeout=5)" >/dev/null 2>&1; \
	  then index="--index-url $(CPU_INDEX)"; \
	  else echo "make: $(CPU_INDEX) cannot be reached: torch from the configured indexes"; fi; fi; \
	echo "$(BIN)/python -m pip install --quiet $$index $(TORCH_PINS)"; \
	$(BIN)/python -m pip install --quiet $$index $(TORCH_PINS)
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@$(BIN)/python -c "import torch; c = torch.version.cuda; print('make: .venv has torch', torch.__version__, f'(the CUDA {c} build)' if c else '(the CPU build)')"
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
