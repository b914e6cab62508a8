# Casework platform: developer entry points. `make` (or `make help`) lists the targets.
# Each target is a thin wrapper around a script; the scripts are the source of truth.

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

# uv may not download Python builds on these machines: use the system Python 3.11.
export UV_PYTHON_DOWNLOADS := never
# scripts/bootstrap.sh installs uv with `pip install --user` when it is missing.
export PATH := $(HOME)/.local/bin:$(PATH)

INFRA := scripts/infra.sh

##@ General

.PHONY: help
help: ## List the targets
	@awk 'BEGIN { FS = ":.*## " } \
		/^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } \
		/^[a-zA-Z0-9_.-]+:.*## / { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

##@ Setup

.PHONY: bootstrap
bootstrap: ## Install uv if missing, then uv sync --frozen (the Python workspace)
	@bash scripts/bootstrap.sh

##@ Local infrastructure: Kafka + FerretDB (+ PostgreSQL); settings in docs/infra.md

.PHONY: infra-install infra-up infra-down status infra-reset logs
infra-install: ## Fetch Kafka jars, build FerretDB, install PostgreSQL if missing (cached)
	@bash $(INFRA) install

infra-up: ## Start Kafka and FerretDB (CASEWORK_DB_BACKEND=postgresql|sqlite), wait until ready
	@bash $(INFRA) up

infra-down: ## Stop Kafka, FerretDB and PostgreSQL
	@bash $(INFRA) down

status: ## One line per infrastructure component: state, pid, address, log file
	@bash $(INFRA) status

infra-reset: ## Stop everything and wipe local data (topics, databases); keeps the download cache
	@bash $(INFRA) reset

logs: ## Show infrastructure logs (C=kafka|ferretdb|postgres for one, F=1 to follow)
	@bash $(INFRA) logs $(C) $(if $(F),-f)

# Services, tests, benchmarks and lint (up, down, test, bench, lint) are added below by
# their owners, each under its own `##@ Section` heading so `make help` groups them.

##@ The platform

.PHONY: up down ps
up: bootstrap ## Install what is missing, start Kafka, FerretDB and the five services, print the URLs
	@bash $(INFRA) up
	@bash scripts/services.sh up

down: ## Stop the services and the infrastructure that `make up` started
	@bash scripts/services.sh down
	@bash $(INFRA) down

ps: ## State of the services and the infrastructure
	@bash scripts/services.sh status
	@bash $(INFRA) status

##@ Trying it

comma := ,
.PHONY: token
token: ## Print a dev token: make -s token ROLE=intake_worker SITE=north [SUB=ivy] [TEAM=t1] (ROLE, SITE: comma-separated)
	@if [ -z "$(ROLE)" ]; then echo "usage: make -s token ROLE=<role>[,<role>] [SITE=<site>[,<site>]] [SUB=<user>] [TEAM=<team>]" >&2; exit 2; fi
	@CASEWORK_ENVIRONMENT="$${CASEWORK_ENVIRONMENT:-development}" uv run --no-sync casework token \
		--sub "$(or $(SUB),$(firstword $(subst $(comma), ,$(ROLE))))" \
		$(foreach role,$(subst $(comma), ,$(ROLE)),--role $(role)) \
		$(foreach site,$(subst $(comma), ,$(SITE)),--site $(site)) \
		$(if $(TEAM),--team $(TEAM))

##@ Quality

.PHONY: test lint
test: bootstrap ## Install what is missing, start the infrastructure, lint, run every test, stop what it started
	@bash scripts/test.sh

lint: ## ruff (lint + format check) and mypy --strict
	@uv run --no-sync ruff check .
	@uv run --no-sync ruff format --check .
	@uv run --no-sync mypy shared/src services/intake/src services/cases/src services/contacts/src services/supervision/src services/notifications/src bench

##@ Benchmarks

.PHONY: bench
bench: bootstrap ## Benchmarks: event pipeline vs its raw limits, then the case lifecycle through the APIs (docs/benchmarks.md)
	@bash scripts/bench.sh
