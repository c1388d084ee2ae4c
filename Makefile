# hyperlab: the two set-up commands are `make train` and `make test`; each creates .venv first if missing.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
# CPU build by default. A GPU user runs e.g.
#   make install TORCH_SPEC="torch --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
STAMP  := $(VENV)/.installed
# This machine's pip config points at local wheel folders that may not exist; drop those warnings only.
QUIET  := sed '/^WARNING: Location/d'
SHELL  := /bin/bash
.SHELLFLAGS := -o pipefail -c
ARGS   ?=

.PHONY: install train test test-slow test-gpu test-full lint format clean rename bench

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip 2>&1 | $(QUIET)
	$(PY) -m pip install -q $(TORCH_SPEC) 2>&1 | $(QUIET)
	$(PY) -m pip install -q -e ".[dev]" 2>&1 | $(QUIET)
	$(PY) -c "import torch, lightning, hydra, torchmetrics, sklearn"
	touch $(STAMP)

train: install
	$(PY) train.py $(ARGS)

# Fast tier: under two minutes on 2 cores, one pytest-xdist worker per core (each with its share of torch's
# threads: tests/conftest.py). pytest's exit code 5 ("no tests collected") is not a failure.
test: install
	$(PY) -m pytest -n auto -m "not slow and not ddp and not postgres and not fault and not gpu" -q $(ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

# Slower tiers: full training runs, CLI subprocesses, notebooks, 2-process DDP, sweeps on PostgreSQL; also one
# worker per core (most of these tests wait on subprocesses that start single-threaded).
test-slow: install
	$(PY) -m pytest -n auto -m "slow or ddp or postgres or fault" -q $(ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

test-full: test test-slow

# GPU paths (zero host syncs per step, bf16 autocast, torch.compile, channels-last): on a machine with CUDA only.
test-gpu: install
	$(PY) -m pytest -m gpu -q $(ARGS); rc=$$?; [ $$rc -eq 5 ] && rc=0; exit $$rc

# Benchmarks (minutes; not part of the tests): each writes its section of bench/results.md.
bench: install
	$(PY) bench/step_throughput.py
	$(PY) bench/checkpoint_floor.py
	$(PY) bench/callback_costs.py
	$(PY) bench/profile_step.py
	$(PY) bench/hook_times.py --setting mlp-256
	$(PY) bench/startup.py
	$(PY) bench/search_efficiency.py
	$(PY) bench/sweep_workers.py
	$(PY) bench/image_loading.py
	$(PY) bench/table_streaming.py
	$(PY) bench/model_selection.py    # about 30 minutes: 9 searches and their baselines
	$(PY) bench/wsd_branches.py       # about 30 minutes: WSD branches against cosine runs, 2 seeds
	$(PY) bench/scaling_laws.py       # about an hour: the scaling grid, its fit, the held-out check

lint: install
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(VENV)/bin/lint-imports    # the layers of src/hyperlab (pyproject.toml [tool.importlinter])

format: install
	$(PY) -m ruff format .
	$(PY) -m ruff check --fix .

# Make the template your own: make rename NAME=myproject
rename:
	@test -n "$(NAME)" || { echo "usage: make rename NAME=myproject"; exit 2; }
	$(PYTHON) scripts/rename.py $(NAME)

clean:
	rm -rf logs .pytest_cache .ruff_cache build src/*.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
