# The two contract commands:  `make run`  and  `make test`.
SHELL := /bin/bash
VENV  ?= .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup system-deps run test lint bench mutate clean

# System packages the stack needs (nginx in front of replicas, wrk for benchmarks).
system-deps:
	@bash scripts/install_system_deps.sh

$(STAMP): pyproject.toml
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

setup: system-deps $(STAMP)
	$(PY) -m reference_server.models --if-missing

# Main job: A/B run, verdict, sweep, capacity plan + HPA simulation, one report (~2 min).
run: setup
	$(VENV)/bin/harness quickstart

test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q -rR -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

bench: setup
	for b in benchmarks/bench_server.py benchmarks/bench_loadgen.py benchmarks/bench_analysis.py \
	         benchmarks/bench_faultproxy.py benchmarks/bench_overload.py benchmarks/bench_workers.py; \
	do $(PY) $$b || exit 1; done

# Mutation testing of one pure-core package (capacity, ab, latency, schedules, config), by
# hand: too slow for CI on 2 cores. `make mutate PKG=capacity ARGS=--survivors`
PKG ?= capacity
mutate: setup
	$(PY) -m pip install -q -e '.[dev,mutation]'
	$(PY) scripts/mutate.py $(PKG) $(ARGS)

clean:
	rm -rf results reports/*/ .pytest_cache
