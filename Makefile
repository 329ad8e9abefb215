# Clinic booking — the verbs people use. `make help` lists them.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PROTO_DIR := protos
GEN_DIR := gen
PROTOS := $(wildcard $(PROTO_DIR)/clinic/v1/*.proto)
GENERATED := $(patsubst $(PROTO_DIR)/%.proto,$(GEN_DIR)/%_pb2.py,$(PROTOS))
STAMP := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help run cluster client test test-fast chaos bench soak protos lint fmt clean

help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  make %-10s %s\n", $$1, $$2}'

$(VENV)/bin/python:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q grpcio-tools==1.85.1

# Generated code is built, never committed: one rule per .proto, with .pyi type stubs.
$(GEN_DIR)/%_pb2.py: $(PROTO_DIR)/%.proto | $(VENV)/bin/python
	@mkdir -p $(GEN_DIR)/clinic/v1
	@touch $(GEN_DIR)/clinic/__init__.py $(GEN_DIR)/clinic/v1/__init__.py
	$(PY) -m grpc_tools.protoc -I $(PROTO_DIR) --python_out=$(GEN_DIR) --pyi_out=$(GEN_DIR) --grpc_python_out=$(GEN_DIR) $<

protos: $(GENERATED) ## generate Python code (and .pyi stubs) from protos/

$(STAMP): pyproject.toml $(GENERATED)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

run: $(STAMP) ## start NATS, Redis and all four services on this machine (Ctrl-C stops all)
	$(PY) -m clinic_cli run

cluster: $(STAMP) ## like run, on a 3-node NATS JetStream cluster (streams with 3 replicas)
	CLINIC_NATS_CLUSTER=3 $(PY) -m clinic_cli run

test: $(STAMP) ## run the whole test suite against real NATS and Redis servers
	$(PY) -m pytest -q $(PYTEST_ARGS)

test-fast: $(STAMP) ## unit tests only (no servers)
	$(PY) -m pytest -q tests/unit

chaos: $(STAMP) ## long fault run: kills, restarts, duplicates, poison (prints its figures)
	CLINIC_CHAOS_BOOKINGS=$${CLINIC_CHAOS_BOOKINGS:-2000} $(PY) -m pytest -q -s tests/chaos -o timeout=1800

bench: $(STAMP) ## throughput/latency benchmark through the gateway (prints a table, writes bench/results)
	$(PY) -m bench

CLIENT_SRC := clients/python/src
client: $(STAMP) ## build the clinic-api wheel (generated stubs with .pyi types) into dist/
	rm -rf $(CLIENT_SRC) clients/python/build dist/clinic_api-*.whl && mkdir -p $(CLIENT_SRC)/clinic/v1
	$(PY) -m grpc_tools.protoc -I $(PROTO_DIR) --python_out=$(CLIENT_SRC) --pyi_out=$(CLIENT_SRC) --grpc_python_out=$(CLIENT_SRC) $(filter-out %saga.proto,$(PROTOS))
	touch $(CLIENT_SRC)/clinic/__init__.py $(CLIENT_SRC)/clinic/v1/__init__.py $(CLIENT_SRC)/clinic/py.typed
	$(PY) -m pip wheel -q --no-deps --no-build-isolation -w dist clients/python

soak: $(STAMP) ## steady load for 10 minutes, sampling each process's memory (prints growth)
	$(PY) -m bench.soak --minutes $${SOAK_MINUTES:-10}

lint: $(STAMP) ## ruff lint and format check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

fmt: $(STAMP) ## format the code
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean: ## remove generated code, the virtualenv and local data
	rm -rf $(GEN_DIR) $(VENV) var .pytest_cache .ruff_cache dist clients/python/src clients/python/build
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
