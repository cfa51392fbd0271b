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

.PHONY: install export archives serve test test-unit bench-fraud bench-mme bench-performer bench-peers loadtest up down logs clean

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

# MLServer needs uvloop<0.22 and numpy 2: its own venv, only its `mlserver` executable is used.
MLSERVER_VENV := build/peers/mlserver-venv
$(MLSERVER_VENV)/.installed:
	test -x $(MLSERVER_VENV)/bin/python || $(PYTHON) -m venv $(MLSERVER_VENV)
	$(MLSERVER_VENV)/bin/pip install --quiet "mlserver==1.7.1" "mlserver-xgboost==1.7.1" "xgboost==2.1.4" "uvloop<0.22"
	touch $@

bench-peers: export $(MLSERVER_VENV)/.installed ## Same XGBoost model on MLServer vs Triton (fil alone, fraud ensemble); writes bench/results/peers.json
	$(PY) -m bench.peers

LOADTEST_DURATION ?= 90
loadtest: export ## Locust scenarios (steady, step ramp, MME churn) against a local endpoint; writes loadtest/results/<timestamp>/
	$(PY) -m tritonmm.loadtest.run --duration $(LOADTEST_DURATION) --repository $(REPO)

# The compose stack (docker/compose.yaml). COMPOSE_PROFILES: cpu or gpu (NVIDIA Container
# Toolkit), plus loadtest for locust, e.g. `make up COMPOSE_PROFILES=gpu,loadtest`.
COMPOSE := docker compose -f docker/compose.yaml
COMPOSE_PROFILES ?= cpu
ALL_PROFILES := --profile cpu --profile gpu --profile loadtest

up: export archives ## Build the images (repository + archives inside) and start the compose stack on 127.0.0.1
	COMPOSE_PROFILES=$(COMPOSE_PROFILES) $(COMPOSE) up --build --detach
	@echo "Triton :8000/:8001/:8002  endpoint :8080  Prometheus :9090  Grafana :3000  (locust :8089 with loadtest)"

down: ## Stop and remove the compose stack's containers (volumes are kept: docker volume rm to drop them)
	$(COMPOSE) $(ALL_PROFILES) down

logs: ## Follow the compose stack's logs
	$(COMPOSE) $(ALL_PROFILES) logs --follow

clean:
	rm -rf build bench/results $(REPO)/*/
