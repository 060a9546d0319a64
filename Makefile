# Two set-up commands: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DT := $(VENV)/bin/datatools
STAMP := $(VENV)/.installed
EXAMPLE := examples/medical_waste
DEMO_OUT ?= demo_out

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e ".[train,dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(DT) validate --ann $(EXAMPLE)/train/_annotations.coco.json --images $(EXAMPLE)/train
	$(DT) validate --ann $(EXAMPLE)/valid/_annotations.coco.json --images $(EXAMPLE)/valid
	$(DT) convert masks --ann $(EXAMPLE)/train/_annotations.coco.json --images $(EXAMPLE)/train \
		--out $(DEMO_OUT)/masks/train --overwrite
	$(DT) convert masks --ann $(EXAMPLE)/valid/_annotations.coco.json --images $(EXAMPLE)/valid \
		--out $(DEMO_OUT)/masks/valid --overwrite
	@echo "demo outputs: $(DEMO_OUT)/masks/{train,valid}/ (img_dir/, ann_dir/, classes.json)"

test: $(STAMP)
	$(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check datatools train tests benchmarks examples
	$(VENV)/bin/mypy datatools train

bench: $(STAMP)
	$(PY) benchmarks/rasterise.py

clean:
	rm -rf $(DEMO_OUT) .pytest_cache
