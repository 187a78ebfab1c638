# The front door: `make setup` then `make serve` on a fresh machine; `make test`.
# Every target calls .venv/bin/... directly, so no virtualenv activation is needed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
HOST ?= http://127.0.0.1:$(PORT)
IMAGE ?= recipe-ml:latest
BENTO ?= recipe_ml_service:latest

# Models live in a store inside the checkout (git-ignored), so a clone is
# self-contained and never touches a shared ~/bentoml.
export BENTOML_HOME ?= $(CURDIR)/bentoml_home
export BENTOML_DO_NOT_TRACK := true
# implicit (ALS) oversubscribes the cores without this.
export OPENBLAS_NUM_THREADS := 1

.PHONY: help setup install system-deps train serve test lint evaluate bench soak bench-swap bench-consumer build containerize loadtest consumer produce clean

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

setup: install train  ## Create .venv, install the pinned dependencies, train the three models.

install:  ## Create .venv, install requirements-dev.txt (runtime + tests + tools) and the `recipe-ml` command.
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -r requirements-dev.txt
	$(BIN)/pip install --no-deps --no-build-isolation -e .

# Debian packages that some tests and benchmarks drive (root; `.ci/run` runs it).
SYSTEM_PACKAGES := wrk default-jdk-headless libjackson2-databind-java

system-deps:  ## apt-get install the load generator (wrk) and the JDK + Jackson of the Java client test.
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES)

train:  ## Train Two-Tower, ALS and popularity into the BentoML store (bentoml_home/).
	$(BIN)/recipe-ml train

serve:  ## Serve the API on PORT (8000), embedded mode (no Redis, no Kafka unless .env says so).
	$(BIN)/bentoml serve service:RecipeService --port $(PORT)

# pytest's exit code is passed through as it is: 5 ("no tests collected")
# fails the target on purpose, since a suite that finds nothing is broken.
test:  ## Run the whole test suite (uses Redis on 127.0.0.1:6379, else starts its own).
	$(BIN)/pytest tests/

lint:  ## ruff (lint and format) and mypy (strict), tests included.
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

evaluate:  ## Offline evaluation; writes training_artifacts/reports/.
	$(BIN)/recipe-ml evaluate

BENCH_SECONDS ?= 10
SOAK_SECONDS ?= 180

bench:  ## The API vs a one-process peer (wrk, 1/16/64 connections): latency, req/s, errors, batch sizes, memory, cold start.
	$(BIN)/python -m harness.bench_api --bentoml-home $(BENTOML_HOME) --seconds $(BENCH_SECONDS)

soak:  ## SOAK_SECONDS (180) of full uncached load: RSS of every process over time, requests, errors, p99.
	$(BIN)/python -m harness.soak --bentoml-home $(BENTOML_HOME) --seconds $(SOAK_SECONDS)

SWAP_WINDOW ?= 6

bench-swap:  ## p99 and runner memory while a new Two-Tower version is promoted and rolled back under uncached load.
	$(BIN)/python -m harness.bench_swap --bentoml-home $(BENTOML_HOME) --window $(SWAP_WINDOW)

bench-consumer:  ## Events applied per second by one consumer (local tansu broker, Redis on 127.0.0.1).
	$(BIN)/python -m harness.bench_consumer

build:  ## Build the Bento recipe_ml_service with the promoted version of each model (else its latest).
	$(BIN)/recipe-ml bentofile --out build/bentofile.yaml
	$(BIN)/bentoml build -f build/bentofile.yaml

containerize:  ## Turn the latest Bento into the image recipe-ml:latest (needs a Docker engine).
	$(BIN)/bentoml containerize $(BENTO) -t $(IMAGE)

loadtest:  ## Headless Locust, 20 users for 60 s against HOST; CSV in loadtests/reports/.
	mkdir -p loadtests/reports
	$(BIN)/locust -f loadtests/locustfile.py --headless --users 20 --spawn-rate 5 --run-time 60s \
		--host $(HOST) --csv loadtests/reports/locust --only-summary

consumer:  ## Kafka consumer (needs KAFKA_BOOTSTRAP_SERVERS and REDIS_URL).
	$(BIN)/recipe-ml consume

produce:  ## Send demo interaction events drawn from the real data to Kafka.
	$(BIN)/recipe-ml produce

clean:  ## Remove caches and load-test reports (keeps .venv and the model store).
	rm -rf .pytest_cache .mypy_cache .ruff_cache loadtests/reports
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +
