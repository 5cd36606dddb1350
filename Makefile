# One entry point for set-up, tests, the demo and the benchmarks.
# Every target creates or refreshes the local virtualenv (.venv) from the pinned requirements when needed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
DEV_STAMP := $(VENV)/.dev-installed
BENCH_STAMP := $(VENV)/.bench-installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: venv test lint format unit demo demo-finetune bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(DEV_STAMP): requirements.txt requirements-dev.txt constraints.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt -c constraints.txt
	touch $@

$(BENCH_STAMP): requirements-bench.txt $(DEV_STAMP)
	$(PY) -m pip install --quiet -r requirements-bench.txt -c constraints.txt
	touch $@

venv: $(DEV_STAMP)

## make test: lint (ruff check + ruff format --check), then the whole pytest suite.
test: lint unit

lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(DEV_STAMP)
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

unit: $(DEV_STAMP)
	$(PY) -m pytest

## make demo: build the embedded demo data if missing, pretrain a tiny BERT with LAMB on the CPU.
demo: $(DEV_STAMP)
	$(PY) run_pretraining.py --config=demo.yaml

## make demo-finetune: after make demo, fine-tune its BERT-tiny and a randomly initialised one on the library
## task (docs/finetuning.md) with the same budget; prints both held-out accuracies.
demo-finetune: $(DEV_STAMP)
	$(PY) -m finetune.demo

## make bench: every benchmark script, each printing its ratio table (several minutes each).
bench: $(BENCH_STAMP)
	$(PY) scripts/benchmarks/bench_optimizer.py
	$(PY) scripts/benchmarks/bench_model.py
	$(PY) scripts/benchmarks/bench_data.py
	$(PY) scripts/benchmarks/bench_pipeline.py
	$(PY) scripts/benchmarks/bench_train.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
