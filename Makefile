# d2m-lab: every target sets itself up (a fresh clone needs no manual step).
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# torch is pinned: the CPU build lies on disk here. A GPU user picks theirs, e.g.
#   make setup TORCH_SPEC="torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
# torchaudio (optional GPU feature path): make setup WITH_TORCHAUDIO=1, with a torch it has a build for.
WITH_TORCHAUDIO ?=
STAMP := $(VENV)/.installed
export WANDB_MODE ?= offline
export WANDB_SILENT ?= true
export PYTHONUNBUFFERED := 1
D2M := $(BIN)/d2m
JOBS ?= 2
# pytest worker processes: the suite is mostly single-threaded tiny runs, so one per core
TEST_WORKERS ?= 2

.PHONY: help setup test test-fast lint demo style-extractor ablation-no-style-regressor ablations \
        bench-cpu-vs-gpu ballet-only wandb-sync clean-wandb clean gpu-check gpu-check-prepare

help: ## list the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-30s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null || { echo "error: $(PY) not found (Python 3.11 is required)"; exit 1; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q $(TORCH_SPEC)
	$(BIN)/python -c "import torch; print('torch', torch.__version__)" | tee $(VENV)/torch-version
	$(BIN)/python -c "import torch; print('torch==' + torch.__version__)" > $(VENV)/constraints.txt
	$(BIN)/pip install -q -c $(VENV)/constraints.txt -e '.[test]'
	if [ -n "$(WITH_TORCHAUDIO)" ]; then $(BIN)/pip install -q -c $(VENV)/constraints.txt torchaudio \
	  || echo "torchaudio: no build for this torch; librosa stays the audio path"; fi
	touch $(STAMP)

setup: $(STAMP) ## create .venv and install the project with its test extras

test: $(STAMP) ## the whole test suite, slow end-to-end tests included
	$(BIN)/ruff check .
	$(BIN)/pytest -q -n $(TEST_WORKERS)

test-fast: $(STAMP) ## the suite without the slow end-to-end tests
	$(BIN)/pytest -q -n $(TEST_WORKERS) -m "not slow"

lint: $(STAMP) ## ruff
	$(BIN)/ruff check .

demo: $(STAMP) ## the main job on the built-in data: data, training, evaluation, a table, a dance
	$(BIN)/python -m ablations.demo --jobs $(JOBS)

style-extractor: $(STAMP) ## original vs improved music style extractor, 3 seeds, CPU, small preset
	$(D2M) ablate ablations/matrices/style-extractor.yaml --jobs $(JOBS)

ablation-no-style-regressor: $(STAMP) ## full model vs no style regressor, 3 seeds
	$(D2M) ablate ablations/matrices/no-style-regressor.yaml --jobs $(JOBS)

ablations: $(STAMP) ## full model and each alignment loss switched off, 3 seeds
	$(D2M) ablate ablations/matrices/ablations.yaml --jobs $(JOBS)

bench-cpu-vs-gpu: $(STAMP) ## per-module training-step timing on CPU and every CUDA device present
	$(D2M) bench --devices cpu,cuda --preset paper --out results/bench

gpu-check: $(STAMP) ## the CUDA check (GPU tests, bench, batch sizes, CUDA training, torchaudio); results/gpu-check/
	bash scripts/gpu_check.sh results/gpu-check

gpu-check-prepare: $(STAMP) ## what gpu-check carries to a GPU machine without librosa (CPU_REF=1: CPU timings too)
	CPU_REF=$(CPU_REF) bash scripts/gpu_check.sh prepare

ballet-only: $(STAMP) ## the whole pipeline on ballet alone, with rendered dances
	$(D2M) ablate ablations/matrices/ballet-only.yaml --jobs $(JOBS)

wandb-sync: $(STAMP) ## upload every offline W&B run under runs/ (needs an account and network)
	find runs -type d -name 'offline-run-*' -print0 | xargs -0 -r -n 8 -P 4 $(BIN)/wandb sync
	[ ! -d results ] || find results -type d -name 'offline-run-*' -print0 | xargs -0 -r -n 8 -P 4 $(BIN)/wandb sync

clean-wandb: ## delete the offline W&B folders (tables are built from run directories, not from these)
	find runs -type d -name wandb -prune -exec rm -rf {} +
	[ ! -d results ] || find results -type d -name wandb -prune -exec rm -rf {} +

clean: ## delete runs, results and the built dataset
	rm -rf runs results data
