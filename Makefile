# The single entry point for people and for CI. `make demo` and `make test` do all the set-up.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# the OCDS schema: ../shared's copy when there is one (no download needed), else downloaded once
SHARED_SCHEMA := $(abspath ../shared/ocds/1.1.5)
ifneq ($(wildcard $(SHARED_SCHEMA)/release-schema.json),)
export OCDS_LIVE_SCHEMA_DIR ?= $(SHARED_SCHEMA)
endif
# the OCDS extensions Mexican publishers declare: ../shared's copies when there are some, else downloaded once
SHARED_EXTENSIONS := $(abspath ../shared/ocds/extensions)
ifneq ($(wildcard $(SHARED_EXTENSIONS)/index.json),)
export OCDS_LIVE_EXTENSIONS_DIR ?= $(SHARED_EXTENSIONS)
endif
SHARED_OC4IDS := $(abspath ../shared/oc4ids/0.9.4)
ifneq ($(wildcard $(SHARED_OC4IDS)/project-schema.json),)
export OCDS_LIVE_OC4IDS_DIR ?= $(SHARED_OC4IDS)
endif

.PHONY: install demo test lint typecheck unit integration services-up services-down bench clean

$(BIN)/ocds-live: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/ocds-live  ## virtualenv, the package and its dev tools, Kafka's jars
	$(BIN)/python -c "from core.settings import load_settings; from ocds_live.services import KafkaService; KafkaService(load_settings()).fetch_jars()"

demo: install  ## the live pipeline on a simulated stream, with the dashboard and feeds served
	$(BIN)/ocds-live demo

test: install  ## lint, types, unit and integration tests against real Kafka and PostgreSQL
	scripts/test.sh

lint: install
	$(BIN)/ruff check .

typecheck: install
	$(BIN)/mypy .

services-up: install
	$(BIN)/ocds-live services up

services-down:
	$(BIN)/ocds-live services down

bench: install
	$(BIN)/python bench/producers.py
	$(BIN)/python bench/merge.py

clean:
	-$(BIN)/ocds-live services down
	rm -rf .local $(VENV)
