# Two commands: `make serve` (set up, export, serve) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
CLI := $(VENV)/bin/tritonmm
REPO := model_repository
HOST ?= 127.0.0.1
ENDPOINT_PORT ?= 8080
STORE := build/model_store
HTTP_PORT ?= 8000
GRPC_PORT ?= 8001
METRICS_PORT ?= 8002
PYTEST_ARGS ?=

.PHONY: install export archives serve test test-unit bench-fraud bench-mme bench-performer loadtest clean

$(VENV)/.installed: pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "need $(PYTHON) on PATH"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# tritonserver 2.51.0 and its Python backend come from this wheel; its own
	# Python dependencies (pytriton's API) are not used, hence --no-deps.
	$(PY) -m pip install --quiet --no-deps nvidia-pytriton==0.7.0
	$(PY) -m pip install --quiet -e ".[export,dev]"
	touch $@

install: $(VENV)/.installed ## Create the venv and install everything

MODEL_SOURCES := $(shell find export server/models server/backends -name '*.py' 2>/dev/null)

$(REPO)/fraud/config.pbtxt: $(VENV)/.installed $(MODEL_SOURCES)
	$(CLI) export fraud --out $(REPO)

$(REPO)/performer_fraud/config.pbtxt: $(VENV)/.installed $(MODEL_SOURCES)
	$(CLI) export performer --out $(REPO)

export: $(REPO)/fraud/config.pbtxt $(REPO)/performer_fraud/config.pbtxt ## Generate data, train, write the model repository

$(STORE)/fraud_1.tar.gz: $(REPO)/fraud/config.pbtxt $(REPO)/performer_fraud/config.pbtxt
	$(CLI) package --pipeline fraud --version 1 --repository $(REPO) --out $(STORE)
	$(CLI) package --pipeline fraud --version 2 --repository $(REPO) --out $(STORE)
	$(CLI) package --pipeline performer_fraud --version 1 --repository $(REPO) --out $(STORE)

archives: $(STORE)/fraud_1.tar.gz ## Reference archives (fraud v1, v2) in the local model store

serve: export archives ## Set up, export, then serve: Triton (repository) + multi-model endpoint (store)
	$(CLI) serve --model-repository $(REPO) --host $(HOST) --http-port $(HTTP_PORT) \
		--grpc-port $(GRPC_PORT) --metrics-port $(METRICS_PORT) \
		--store $(STORE) --endpoint-port $(ENDPOINT_PORT)

test: install ## Unit and integration tests (starts real tritonservers on free ports)
	$(PY) -m pytest $(PYTEST_ARGS)

test-unit: install
	$(PY) -m pytest -m "not integration" $(PYTEST_ARGS)

bench-fraud: export ## In-process vs served fraud pipeline; writes bench/results/fraud.json
	$(PY) -m bench.fraud

bench-mme: archives ## Cold loads and warm overhead of the multi-model endpoint; writes bench/results/mme.json
	$(PY) -m bench.mme

bench-performer: install ## FAVOR+ vs exact attention vs no attention, latency and memory against L; writes bench/results/performer.json
	$(PY) -m bench.performer

LOADTEST_DURATION ?= 90
loadtest: export ## Locust scenarios (steady, step ramp, MME churn) against a local endpoint; writes loadtest/results/<timestamp>/
	$(PY) -m tritonmm.loadtest.run --duration $(LOADTEST_DURATION) --repository $(REPO)

clean:
	rm -rf build bench/results $(REPO)/*/
