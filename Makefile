# nmt: the main job (fetch Multi30k, train de->en, translate and score test_2016) and the checks.
#   make main                     full training (hours on CPU, minutes on a GPU)
#   make main OVERRIDES="train.max_steps=300"    a short CPU run
#   make test / make lint

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIG ?= configs/multi30k_de_en_bahdanau.yaml
RUN_DIR ?= runs/multi30k_de_en_bahdanau
OVERRIDES ?=
BEAM ?= 5
TEST_SRC ?= data/multi30k/test_2016_flickr.de.gz
TEST_REF ?= data/multi30k/test_2016_flickr.en.gz
# torch is pinned here (not in pyproject.toml): 2.13.0 is the CPU wheel this machine class has on disk;
# an open range makes pip pull a multi-GB CUDA build.
TORCH ?= torch==2.13.0

.PHONY: setup data train translate evaluate main test test-unit test-e2e lint format clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $@

data:
	$(PYTHON) scripts/fetch_multi30k.py --dest data/multi30k

train: setup
	$(BIN)/nmt-train --config $(CONFIG) run_dir=$(RUN_DIR) $(OVERRIDES)

translate: setup
	$(BIN)/nmt-translate --model $(RUN_DIR) --input $(TEST_SRC) --output $(RUN_DIR)/test_2016_flickr.hyp --beam $(BEAM)

evaluate: setup
	$(BIN)/nmt-eval --hyp $(RUN_DIR)/test_2016_flickr.hyp --ref $(TEST_REF) --json $(RUN_DIR)/test_2016_flickr.scores.json

main: setup data train translate evaluate

test: setup
	$(BIN)/python -m pytest -q tests

test-unit: setup
	$(BIN)/python -m pytest -q tests/unit

test-e2e: setup
	$(BIN)/python -m pytest -q tests/e2e

lint: setup
	$(BIN)/ruff check nmt scripts tests benchmarks
	$(BIN)/ruff format --check nmt scripts tests benchmarks

format: setup
	$(BIN)/ruff format nmt scripts tests benchmarks
	$(BIN)/ruff check --fix nmt scripts tests benchmarks

clean:
	rm -rf runs/tiny .pytest_cache .ruff_cache
