# Every target installs what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PY_STAMP := $(VENV)/.installed
NODE_STAMP := node_modules/.installed
CHECKOV_VENV := .venv-checkov
CHECKOV_STAMP := $(CHECKOV_VENV)/.installed
COMPUTE ?= lambda
CDK_ARGS ?=
# synth, deploy and preflight pass -c compute= only when COMPUTE is given (make deploy COMPUTE=ecs): otherwise
# cdk.json and CDK_ARGS decide, so a plain `make deploy` never switches a deployed stack's compute.
COMPUTE_ARG := $(if $(filter command line environment,$(origin COMPUTE)),-c compute=$(COMPUTE))
SCENARIO ?= flash
LOCUST_WEB ?=

export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export CDK_DISABLE_CLI_TELEMETRY := true
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: setup test test-unit test-infra test-integration test-e2e lint typecheck synth deploy preflight smoke catalog bench sandbox chaos compare plan cost redrive up down deploy-local load watch clean help

$(PY_STAMP): requirements.txt requirements-dev.txt runtime/requirements.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements-dev.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

$(CHECKOV_STAMP): requirements-checkov.txt
	test -x $(CHECKOV_VENV)/bin/python || $(PYTHON) -m venv $(CHECKOV_VENV)
	$(CHECKOV_VENV)/bin/pip install -q -r requirements-checkov.txt
	touch $@

$(NODE_STAMP): package.json package-lock.json
	@command -v npm >/dev/null || { echo "error: node/npm not found; install Node.js 20+ to run the CDK CLI" >&2; exit 1; }
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: ## install Python and npm dependencies (and checkov in its own venv), the three side by side
	@$(MAKE) --no-print-directory -j3 $(PY_STAMP) $(NODE_STAMP) $(CHECKOV_STAMP)

lint: $(PY_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: $(PY_STAMP)
	$(VENV)/bin/mypy

# The e2e level spends much of its time waiting on the sandbox (deploy polls, drain, long polls): the other
# levels run beside it at the lowest CPU priority,
# so they fill that idle time and never slow a sale. Each
# writes its own coverage file; the report combines them. The other levels' output is printed after e2e's.
test: setup ## lint, typecheck, every test level (e2e beside the rest), coverage printed
	@$(MAKE) --no-print-directory -j2 lint typecheck
	@rm -f .coverage .coverage.*; log=$$(mktemp); status=0; \
	COVERAGE_FILE=.coverage.levels nice -n 19 $(PY) -m pytest -m "not e2e" --cov --cov-report= --durations=8 >$$log 2>&1 & levels=$$!; \
	COVERAGE_FILE=.coverage.e2e $(PY) -m pytest -m e2e --cov --cov-report= --durations=8 || status=1; \
	wait $$levels || status=1; cat $$log; rm -f $$log; \
	$(PY) -m coverage combine -q && $(PY) -m coverage report; exit $$status

test-unit: $(PY_STAMP) ## pure Python tests, no network (seconds)
	$(PY) -m pytest -m unit

test-infra: $(PY_STAMP) $(NODE_STAMP) $(CHECKOV_STAMP) ## synth every variant and assert on the templates (cdk-nag, cfn-lint, checkov)
	$(PY) -m pytest -m infra

test-integration: $(PY_STAMP) ## the runtime against moto in-process, the API fuzz, the emulator's fidelity
	$(PY) -m pytest -m integration

test-e2e: $(PY_STAMP) $(NODE_STAMP) ## the sandbox end to end: real cdk deploy onto the emulator, small sales
	$(PY) -m pytest -m e2e

synth: setup ## synthesize both stacks (compute from cdk.json unless COMPUTE=lambda|ecs|lambda-mi; CDK_ARGS='-c key=value ...')
	npx cdk synth --quiet $(COMPUTE_ARG) $(CDK_ARGS)

preflight: setup ## read-only checks of the AWS account in your credentials against the context (quotas, roles, bootstrap, layer)
	$(PY) -m ops.preflight $(COMPUTE_ARG) $(CDK_ARGS)

deploy: setup ## preflight, then deploy to the AWS account in your credentials (compute from cdk.json unless COMPUTE=)
	$(PY) -m ops.preflight $(COMPUTE_ARG) $(CDK_ARGS)
	npx cdk deploy --all $(COMPUTE_ARG) $(CDK_ARGS)

smoke: setup ## one order end to end against `make up`'s stack, or the deployed one (SMOKE_ARGS='--stack-prefix ...')
	$(PY) -m ops.smoke $(SMOKE_ARGS)

catalog: setup ## load a catalog file into `make up`'s stack, or the deployed one (FILE=..., CATALOG_ARGS='--stack-prefix ...')
	$(PY) -m ops.catalog load $(or $(FILE),sandbox/catalogs/flash-sale.json) $(CATALOG_ARGS)

bench: setup ## measured figures: worker efficiency, cold start, synth time, emulator SQS rates, DynamoDB transactions and cost per order
	@status=0; \
	$(PY) -m benchmarks.worker_efficiency || status=1; \
	$(PY) -m benchmarks.lambda_batch || status=1; \
	$(PY) -m benchmarks.cold_start || status=1; \
	$(PY) -m benchmarks.synth_time || status=1; \
	$(PY) -m benchmarks.sqs_emulator || status=1; \
	$(PY) -m benchmarks.dynamodb_transactions || status=1; \
	$(PY) -m benchmarks.emulator_order_cost || status=1; \
	$(PY) -m benchmarks.emulator_capacity || status=1; \
	if [ $$status -ne 0 ]; then echo "bench: at least one bar was missed (see above)"; fi; exit $$status

sandbox: setup ## deploy onto a local emulator and run a flash sale (COMPUTE=lambda|ecs|lambda-mi, SANDBOX_ARGS=...)
	$(PY) -m sandbox --compute $(COMPUTE) $(SANDBOX_ARGS)

chaos: setup ## the flash sale under kills, payment faults, declines and poison (COMPUTE=lambda|ecs, SANDBOX_ARGS=...)
	$(PY) -m sandbox --chaos --compute $(COMPUTE) $(SANDBOX_ARGS)

redrive: setup ## the DLQ by reason, then what can succeed sent back (REDRIVE_ARGS='redrive --rate 5'; env: ORDERS_DLQ_URL ...)
	$(PY) -m orders.redrive $(or $(REDRIVE_ARGS),show)

compare: setup ## ecs, lambda-sqs (standard, provisioned), lambda-sns and lambda-mi on one scenario: measured vs model, AWS at the source's scale, cost (COMPARE_ARGS=...)
	$(PY) -m sandbox compare $(COMPARE_ARGS)

plan: setup ## what a flash sale does to each variant on AWS, and the smallest setting that meets it (PLAN_ARGS=...)
	$(PY) -m planner plan $(or $(PLAN_ARGS),--rate 60 --duration 60 --drain-slo 300) $(CDK_ARGS)

cost: setup ## monthly cost by volume and service for each variant, and the break-even (COST_ARGS=...)
	$(PY) -m planner cost $(or $(COST_ARGS),--orders 1000000) $(CDK_ARGS)

up: setup ## deploy onto a local AWS and keep it running until Ctrl-C or `make down` (COMPUTE=, CDK_ARGS=, UP_ARGS=)
	$(PY) -m sandbox up --compute $(COMPUTE) $(CDK_ARGS) $(UP_ARGS)

down: setup ## stop the stack `make up` started, and every process it started
	$(PY) -m sandbox down

deploy-local: setup ## cdk deploy onto the running local stack: its context plus CDK_ARGS (COMPUTE= switches the workers)
	$(PY) -m sandbox deploy-local $(if $(filter command line environment,$(origin COMPUTE)),--compute $(COMPUTE)) $(CDK_ARGS)

load: setup ## Locust against the running local stack (SCENARIO=normal|flash|source; LOCUST_WEB=1 for Locust's web UI)
	$(PY) -m sandbox load --scenario $(SCENARIO) $(if $(LOCUST_WEB),--web)

watch: setup ## the running local stack, refreshed each second
	$(PY) -m sandbox watch

clean: ## remove build and test caches
	rm -rf cdk.out .pytest_cache .mypy_cache .ruff_cache .coverage

help: ## every target and what it does
	@grep -E '^[a-z][a-z0-9-]*:.*## ' $(MAKEFILE_LIST) | sed -E 's/^([a-z0-9-]+):.*## /\1\t/' | expand -t 20
