# The front door: `make setup` then `make serve` on a fresh machine; `make test`.
# Every target calls .venv/bin/... directly, so no virtualenv activation is needed.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8000
# The interface `make serve` listens on is the HOST setting (127.0.0.1 unless .env or the environment
# says otherwise: `HOST=0.0.0.0 make serve` exposes it); this is the URL `make loadtest` drives.
LOADTEST_URL ?= http://127.0.0.1:$(PORT)
IMAGE ?= recipe-ml:latest
BENTO ?= recipe_ml_service:latest

# Models live in a store inside the checkout (git-ignored), so a clone is
# self-contained and never touches a shared ~/bentoml.
export BENTOML_HOME ?= $(CURDIR)/bentoml_home
export BENTOML_DO_NOT_TRACK := true
# implicit (ALS) oversubscribes the cores without this.
export OPENBLAS_NUM_THREADS := 1

.PHONY: help setup install lock system-deps train serve test lint evaluate simulate-experiment fold-in-reach bench bench-scale bench-scale-out soak bench-swap bench-consumer build containerize loadtest consumer produce clean compose-secrets compose-config compose-up

help:  ## List the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-15s %s\n", $$1, $$2}'

setup: install train  ## Create .venv, install the pinned dependencies, train the three models (and the Debian packages, as root).
	@if [ "$$(id -u)" = 0 ]; then \
		echo "make setup: running as root, so installing the Debian packages the tests drive (make system-deps)"; \
		$(MAKE) --no-print-directory system-deps; \
	elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then \
		echo "make setup: installing the Debian packages the tests drive with sudo (sudo make system-deps)"; \
		sudo $(MAKE) --no-print-directory system-deps; \
	else \
		echo "make setup: not root and no sudo: the tests that drive $(SYSTEM_PACKAGES) will skip, naming the command;"; \
		echo "            install them once, as root: make system-deps"; \
	fi

install:  ## Create .venv, install requirements-dev.lock (the whole tree, hash-checked) and the `recipe-ml` command; checkov in .venv/checkov.
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --require-hashes -r requirements-dev.lock
	$(BIN)/pip install --no-deps --no-build-isolation -e .
	$(PYTHON) -m venv $(VENV)/checkov
	$(VENV)/checkov/bin/pip install -r requirements-checkov.txt
	ln -sf ../checkov/bin/checkov $(BIN)/checkov

# requirements*.txt name the direct dependencies; the locks pin every package of the tree with its hashes.
LOCK_FLAGS := --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url --no-emit-find-links

lock:  ## After changing a pin in requirements*.txt: resolve them into requirements.lock and requirements-dev.lock.
	$(BIN)/pip-compile $(LOCK_FLAGS) --output-file requirements.lock requirements.txt
	$(BIN)/pip-compile $(LOCK_FLAGS) -c requirements.lock --output-file requirements-dev.lock requirements-dev.txt

# Debian packages that some tests and benchmarks drive (root; `make setup` runs it as root or with
# sudo, `.ci/run` always): the load generator; the JDK, Jackson, Maven with the plugins and JUnit of
# the Java client's offline build (clients/java/pom.xml); a redis-server built with TLS; ss (iproute2);
# a compose CLI to validate docker-compose.yml; Prometheus (+ promtool) for the alerting tests.
JAVA_PACKAGES := default-jdk-headless libjackson2-databind-java maven junit5 libmaven-compiler-plugin-java \
	libmaven-resources-plugin-java libsurefire-java libmaven-jar-plugin-java
SYSTEM_PACKAGES := wrk $(JAVA_PACKAGES) redis-server iproute2 docker-compose prometheus

system-deps:  ## apt-get install the Debian packages the tests drive (wrk, JDK + Maven + Jackson, TLS redis-server, compose, Prometheus).
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(SYSTEM_PACKAGES)

train:  ## Train Two-Tower, ALS and popularity into the BentoML store (bentoml_home/).
	$(BIN)/recipe-ml train

serve:  ## Serve the API on HOST:PORT (127.0.0.1:8000), embedded mode (no Redis, no Kafka unless .env says so).
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

SIMULATION_HOME := training_artifacts/simulation_home
simulate-experiment:  ## A/B through the live API, shipped vs popularity-only, on models fitted on train: cook rate per variant (experiment.png).
	test -d $(SIMULATION_HOME)/models || BENTOML_HOME=$(SIMULATION_HOME) OPENBLAS_NUM_THREADS=1 $(BIN)/recipe-ml train --eval
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m harness.simulate_experiment --bentoml-home $(SIMULATION_HOME)

fold-in-reach:  ## New recipes folded in from 3, 6, 12 or all their fans, models fitted on train: where their later fans' lists put them.
	OPENBLAS_NUM_THREADS=1 $(BIN)/python -m harness.fold_in_reach

BENCH_SECONDS ?= 10
BENCH_ARGS ?=
SOAK_SECONDS ?= 180

bench:  ## The API vs a one-process peer (wrk, 1/16/64 connections): latency, req/s, errors, batch sizes, memory, cold start.
	$(BIN)/python -m harness.bench_api --bentoml-home $(BENTOML_HOME) --seconds $(BENCH_SECONDS) $(BENCH_ARGS)

bench-scale-out:  ## The Kubernetes pods on this machine: wrk on 1 API + 1 Two-Tower vs 2 + 2 (req/s, batch sizes, memory).
	$(BIN)/python -m harness.bench_scale_out --bentoml-home $(BENTOML_HOME) --seconds $(BENCH_SECONDS)

soak:  ## SOAK_SECONDS (180) of full uncached load: RSS of every process over time, requests, errors, p99.
	$(BIN)/python -m harness.soak --bentoml-home $(BENTOML_HOME) --seconds $(SOAK_SECONDS)

SCALE_SIZES ?= 100000,1000000

bench-scale:  ## Catalogues of SCALE_SIZES recipes drawn like the Two-Tower: exact scoring vs the recipe index (build, memory, latency, recall).
	nice $(BIN)/python -m harness.bench_scale --bentoml-home $(BENTOML_HOME) --sizes $(SCALE_SIZES)

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

loadtest:  ## Headless Locust, 20 users for 60 s against LOADTEST_URL; CSV in loadtests/reports/.
	mkdir -p loadtests/reports
	$(BIN)/locust -f loadtests/locustfile.py --headless --users 20 --spawn-rate 5 --run-time 60s \
		--host $(LOADTEST_URL) --csv loadtests/reports/locust --only-summary

consumer:  ## Kafka consumer (needs KAFKA_BOOTSTRAP_SERVERS and REDIS_URL).
	$(BIN)/recipe-ml consume

produce:  ## Send demo interaction events drawn from the real data to Kafka.
	$(BIN)/recipe-ml produce

# The compose CLI: the v2 plugin (`docker compose`) where there is one, else docker-compose.
COMPOSE ?= $(shell docker compose version >/dev/null 2>&1 && echo "docker compose" || echo docker-compose)

compose-secrets:  ## Write deploy/secrets.env with random values (names from deploy/secrets.env.example), unless it exists.
	$(PYTHON) deploy/compose_secrets.py

compose-config: compose-secrets  ## Validate docker-compose.yml with the compose CLI (secrets written first).
	$(COMPOSE) config -q

compose-up: compose-secrets  ## Start the compose stack (image recipe-ml:latest: make build containerize), secrets written first.
	$(COMPOSE) up -d

clean:  ## Remove caches and load-test reports (keeps .venv and the model store).
	rm -rf .pytest_cache .mypy_cache .ruff_cache loadtests/reports
	find . -path ./.venv -prune -o -name __pycache__ -type d -exec rm -rf {} +
