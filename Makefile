# Two commands for a fresh clone: `make demo` (end to end) and `make test` (the whole suite).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
SHARED := $(abspath ../shared)

# The real model and photos: use ../shared when it is beside the checkout, unless already set.
ifneq ($(wildcard $(SHARED)/models/yolov8n_int8.tflite),)
export NONSITE_WEIGHTS ?= $(SHARED)/models/yolov8n_int8.tflite
endif
ifneq ($(wildcard $(SHARED)/media),)
export NONSITE_MEDIA ?= $(SHARED)/media
endif

.PHONY: demo test screenshots install kafka-jars kafka-start kafka-stop clean

# Every process's extra (detector, worker, web) and the test tools: the suite runs them all.
$(BIN)/nonsite: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[detector,worker,web,test]'
	touch $@

install: $(BIN)/nonsite

kafka-jars: install
	$(BIN)/python -c "from nonsite.devtools.kafka_local import ensure_jars; ensure_jars()"

demo: install
	$(BIN)/nonsite demo

test: install kafka-jars
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The README's pictures (docs/screenshots/*.png), only on request: the page tests in real headless Chromium
# on their own local Kafka, saving their captures there instead of a temporary folder.
screenshots: install kafka-jars
	$(BIN)/python -m pytest tests/web/test_web_pages.py tests/web/test_zone_editor.py --screenshots docs/screenshots $(PYTEST_ARGS)

kafka-start: install
	$(BIN)/nonsite kafka start

kafka-stop: install
	$(BIN)/nonsite kafka stop

clean:
	rm -rf var .cache/demo .pytest_cache
