# jobline: every set-up step lives here so a fresh clone needs only Python 3.11 and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat requirements-dev.lock pyproject.toml | cksum | cut -d' ' -f1)
REGION ?= us-east-1
export AWS_DEFAULT_REGION ?= $(REGION)
# sam must never phone home or prompt during CI.
export SAM_CLI_TELEMETRY := 0

.PHONY: all venv lint validate build test unit demo bench deploy generate clean

all: test

$(STAMP): requirements-dev.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info[:2] == (3, 11), "jobline needs Python 3.11, found " + sys.version'
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $@

venv: $(STAMP)

## lint: ruff (lint + format), catalog validation, template drift check
lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m jobline_tools.codegen check

## validate: the SAM template, with cfn-lint rules
validate: venv
	$(BIN)/sam validate --lint --region $(REGION)

## build: sam build (the layer and every function)
build: venv
	$(BIN)/sam build --region $(REGION)

## generate: rewrite the catalog-derived part of template.yaml
generate: venv
	$(BIN)/python -m jobline_tools.codegen write

unit: venv
	$(BIN)/pytest -q

test: lint validate build unit

## demo: the whole pipeline on the local stack, no AWS account needed
demo: venv
	$(BIN)/python -m jobline_local.demo

## bench: cost per run and burst figures, before (a baseline ref) and after, side by side (ARGS="--files 20")
bench: venv
	$(BIN)/python -m jobline_local.bench $(ARGS)

## deploy: build, then deploy with samconfig.toml (add ARGS=--guided the first time)
deploy: build
	$(BIN)/sam deploy $(ARGS)

clean:
	rm -rf $(VENV) .aws-sam .pytest_cache .ruff_cache
