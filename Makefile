# The entry points people type. Each bootstraps what it needs (uv, the workspace environment).
SHELL := /bin/bash
.DEFAULT_GOAL := help

# uv from PATH, or installed into .tools/ from PyPI on first use.
UV := $(or $(shell command -v uv 2>/dev/null),$(CURDIR)/.tools/bin/uv)
RUN := $(UV) run --frozen
PYTEST_ARGS ?=
TEST_DIRS := $(wildcard src/servicekit/tests src/gateway/tests src/shipping/*/tests tests/* loadtests/tests)

# The Azure Pipelines schema is not part of the project; it lies beside the clone.
PIPELINES_SCHEMA ?= ../shared/schemas/azure-pipelines.schema.json

.PHONY: help dev demo loadtest bench chaos fuzz test test-backends lint format sync validate-pipelines charts k8s-tools new-service

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-20s %s\n", $$1, $$2}'

dev: sync ## run the whole system (gateway :8080 and the services) on embedded SQLite stores
	@$(RUN) python -m devstack up

demo: sync ## send a few deliveries through the gateway and watch them fly (starts the system if needed)
	@$(RUN) python -m devstack demo

# LOADTEST_ARGS, e.g. --shape spike --seconds 180, or --host http://127.0.0.1:8080 (see docs/load-testing.md).
LOADTEST_ARGS ?=
loadtest: sync ## Locust against the local system (started if it is not running), report in loadtests/results/
	@$(RUN) python -m loadtests.loadtest $(LOADTEST_ARGS)

BENCH_ARGS ?=
bench: sync ## the system beside a baseline app: loadtests/results/bench.json (needs wrk and nginx)
	@command -v wrk >/dev/null || { echo "make bench needs wrk: sudo apt-get install wrk" >&2; exit 1; }
	@$(RUN) python -m loadtests.bench $(BENCH_ARGS)

# Every test; those marked `backend` are skipped with the reason where their server cannot run (unless
# CI=true). PYTEST_ARGS narrows the run, e.g. PYTEST_ARGS='-m "not backend"' (as .ci/run does).
test: lint ## lint, type-check and run every test
	$(RUN) pytest $(PYTEST_ARGS)

# What is marked `backend`: the store contract suites, the services' tests on the production backends'
# local servers (the Cosmos DB test server, installed from npm into .tools/, and PostgreSQL through
# psqlODBC) and the end-to-end run on them. Here a missing server fails the run instead of skipping
# (see docs/stores.md).
test-backends: sync ## run the tests on the Cosmos DB test server and on PostgreSQL over ODBC
	REQUIRE_BACKENDS=1 $(RUN) pytest -m backend $(PYTEST_ARGS)

# The full chaos profile: a minute of kill -9 under load (make test runs 15 s of it), and the
# stores taken away for 15 s (12 s in make test). The reports are printed at the end and kept in .data/chaos/.
CHAOS_SECONDS ?= 60
OUTAGE_SECONDS ?= 15
chaos: sync ## kill -9 the services at random for a minute under load, take their stores away; report
	CHAOS_SECONDS=$(CHAOS_SECONDS) OUTAGE_SECONDS=$(OUTAGE_SECONDS) $(RUN) pytest tests/chaos $(PYTEST_ARGS)

# The thorough fuzz profile: 100 generated requests an operation (make test runs 10).
FUZZ_MAX_EXAMPLES ?= 100
fuzz: sync ## schemathesis over every service's OpenAPI document and the public API through the gateway
	FUZZ_MAX_EXAMPLES=$(FUZZ_MAX_EXAMPLES) $(RUN) pytest tests/fuzz $(PYTEST_ARGS)

lint: sync ## ruff (lint + format check) and mypy --strict
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy
	@# Each test folder on its own: they all have a conftest.py, which one mypy run cannot tell apart.
	@# tests/e2e holds the helpers the other whole-system tests share.
	@for tests in $(TEST_DIRS); do MYPYPATH=$$tests:tests/e2e $(RUN) mypy --no-error-summary $$tests || exit 1; done

validate-pipelines: sync ## check pipelines/*.yml against the Azure Pipelines schema (PIPELINES_SCHEMA)
	$(RUN) python pipelines/validate.py --schema $(PIPELINES_SCHEMA)

format: sync ## apply ruff's fixes and formatting
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

# The Kubernetes tooling lives in its own environment, out of the workspace's lock (checkov pins old
# libraries). tests/charts use it too when it is there.
K8S_TOOLS := $(CURDIR)/.tools/k8s
# The Kubernetes version the rendered manifests are validated against: one that AKS supports.
KUBERNETES_VERSION := 1.35.0

k8s-tools: $(UV) ## install helm, kubectl, kubernetes-validate, checkov and hadolint into .tools/k8s
	@UV=$(UV) charts/k8s-tools.sh $(K8S_TOOLS)

charts: k8s-tools ## lint, render, validate and scan the Helm charts, the manifests and the Dockerfiles
	@charts/check.sh $(K8S_TOOLS) $(KUBERNETES_VERSION)

new-service: sync ## copy the template service under a new name: make new-service NAME=tracking
	@test -n "$(NAME)" || { echo "usage: make new-service NAME=<name>" >&2; exit 1; }
	@$(RUN) python -m devstack new-service $(NAME)
	@$(UV) lock --quiet && $(UV) sync --all-packages --quiet

sync: $(UV) ## create or update .venv from uv.lock
	@$(UV) sync --frozen --all-packages --quiet

$(CURDIR)/.tools/bin/uv:
	@python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || \
	  { echo "Python 3.11 or newer is needed as python3 (found: $$(python3 --version 2>&1))." >&2; exit 1; }
	@python3 -m venv $(CURDIR)/.tools 2>/dev/null || \
	  { echo "python3 cannot create virtual environments; install it with: sudo apt-get install python3-venv" >&2; exit 1; }
	@echo "installing uv into .tools/ (from PyPI)"
	@$(CURDIR)/.tools/bin/pip install --quiet --disable-pip-version-check uv
