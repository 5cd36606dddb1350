# One entry point for set-up, tests, the demo and the benchmarks.
# Every target creates or refreshes the local virtualenv (.venv) from the pinned requirements when needed.

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
DEV_STAMP := $(VENV)/.dev-installed
BENCH_STAMP := $(VENV)/.bench-installed
export TF_CPP_MIN_LOG_LEVEL ?= 2

DEMO_DATA := runs/demo/data

.PHONY: venv test lint format unit demo demo-data demo-finetune bench docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)

$(DEV_STAMP): requirements.txt requirements-beam.txt requirements-dev.txt constraints.txt | $(PY)
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

## make demo: make the demo's data if it is missing (demo-data), then pretrain a tiny BERT with LAMB on the CPU.
demo: demo-data
	$(PY) run_pretraining.py --config=demo.yaml

## make demo-data: the demo's training data from the embedded corpus (configs/demo.yaml reads it), once.
demo-data: $(DEMO_DATA)/meta.json

# meta.json is written last: without it the directory holds at most an interrupted build, replaced.
$(DEMO_DATA)/meta.json: | $(DEV_STAMP)
	$(PY) -m data.create_pretraining_data --input=embedded --output_dir=$(DEMO_DATA) --learn_vocab \
		--vocab_size=4000 --max_seq_length=64 --max_predictions_per_seq=10 --dupe_factor=1 --num_shards=4 \
		--overwrite

## make demo-finetune: after make demo, fine-tune its BERT-tiny and a randomly initialised one on the library
## task (16 labelled sentences per library, docs/finetuning.md) with the same budget, for three seeds; prints
## both held-out accuracies, their means and the difference.
demo-finetune: $(DEV_STAMP)
	$(PY) -m finetune.demo

## make bench: every benchmark script, each printing its ratio table (several minutes each).
bench: $(BENCH_STAMP)
	$(PY) scripts/benchmarks/bench_optimizer.py
	$(PY) scripts/benchmarks/bench_model.py
	$(PY) scripts/benchmarks/bench_data.py
	$(PY) scripts/benchmarks/bench_pipeline.py
	$(PY) scripts/benchmarks/bench_train.py

## make docs: rewrite the generated tables of README.md and docs/*.md from the code (tests/test_docs.py checks them).
docs: $(DEV_STAMP)
	$(PY) docs/generate.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
