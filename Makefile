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
.PHONY: help run cluster client test test-fast chaos bench soak protos web browser lint fmt clean

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

# The descriptor set Envoy's gRPC-JSON transcoder and the OpenAPI document are made from (gateway/json_api.py):
# every public proto with its imports, and google.rpc's error details (BadRequest in JSON errors).
DESCRIPTORS := $(GEN_DIR)/clinic_descriptors.pb
$(DESCRIPTORS): $(PROTOS) | $(STAMP)
	$(PY) -m grpc_tools.protoc -I $(PROTO_DIR) -I $(GOOGLE_PROTOS) --include_imports --include_source_info --descriptor_set_out=$@ $(filter-out %saga.proto,$(PROTOS)) google/rpc/error_details.proto google/rpc/status.proto

protos: $(GENERATED) $(DESCRIPTORS) ## generate Python code (and .pyi stubs) and the descriptor set from protos/

$(STAMP): pyproject.toml $(GENERATED)
	$(PY) -m pip install -q -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP) $(DESCRIPTORS)

# The front desk page (web/): TypeScript clients generated from the same protos by protoc-gen-es
# (pinned in web/package-lock.json), bundled by esbuild into web/dist, which Envoy serves. Like gen/,
# web/gen and web/dist are built, never committed; each step reruns only when its inputs change.
WEB_MODULES := web/node_modules/.package-lock.json
WEB_GEN := web/gen/.stamp
WEB_DIST := web/dist/app.js
GOOGLE_PROTOS = $(shell $(PY) -c 'import pathlib; from google.rpc import error_details_pb2 as m; print(pathlib.Path(m.__file__).parents[2])')

$(WEB_MODULES): web/package.json web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

$(WEB_GEN): $(PROTOS) $(WEB_MODULES) | $(STAMP)
	rm -rf web/gen && mkdir -p web/gen
	$(PY) -m grpc_tools.protoc -I $(PROTO_DIR) -I $(GOOGLE_PROTOS) --plugin=protoc-gen-es=web/node_modules/.bin/protoc-gen-es --es_out=web/gen --es_opt=target=ts,import_extension=js $(filter-out %saga.proto,$(PROTOS)) google/rpc/error_details.proto
	@touch $@

$(WEB_DIST): $(WEB_GEN) $(wildcard web/src/*) web/build.mjs web/tsconfig.json
	cd web && node_modules/.bin/tsc -p . && node build.mjs

web: $(WEB_DIST) ## build the front desk page (web/dist) that `make run` serves at the public address

browser: ## install Debian's chromium for the browser tests when it is missing (needs root)
	@if [ -x /usr/bin/chromium ]; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		echo "installing chromium for the browser tests (apt-get)"; \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) \
		|| echo "browser tests: apt-get could not install chromium; they will be skipped"; \
	else echo "browser tests: /usr/bin/chromium is missing and this is not root: run 'apt-get install chromium' as root"; fi

run: $(STAMP) $(DESCRIPTORS) $(WEB_DIST) ## start NATS, Redis and every service (clinic_common/services.py) on this machine (Ctrl-C stops all)
	$(PY) -m clinic_cli run

cluster: $(STAMP) $(DESCRIPTORS) $(WEB_DIST) ## like run, on a 3-node NATS JetStream cluster (streams with 3 replicas)
	CLINIC_NATS_CLUSTER=3 $(PY) -m clinic_cli run

# The suite runs in TEST_WORKERS pytest-xdist processes, each with its own servers and a whole file at a
# time (tests/conftest.py hands out the longest files first); TEST_WORKERS=0 runs it in this process.
TEST_WORKERS ?= 3
test: $(STAMP) $(DESCRIPTORS) $(WEB_DIST) browser ## run the whole test suite against real NATS and Redis servers
	$(PY) -m pytest -q $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder) $(PYTEST_ARGS)

test-fast: $(STAMP) $(DESCRIPTORS) ## unit tests only (no servers)
	$(PY) -m pytest -q tests/unit

chaos: $(STAMP) ## long fault run: kills, restarts, duplicates, poison (prints its figures)
	CLINIC_CHAOS_BOOKINGS=$${CLINIC_CHAOS_BOOKINGS:-2000} $(PY) -m pytest -q -s tests/chaos -o timeout=1800

bench: $(STAMP) $(DESCRIPTORS) ## throughput/latency benchmark through the gateway (prints a table, writes bench/results)
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
	rm -rf $(GEN_DIR) $(VENV) web/gen web/dist web/node_modules var .pytest_cache .ruff_cache dist clients/python/src clients/python/build
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
