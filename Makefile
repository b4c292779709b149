# The README's commands. `make demo` and `make test` do all set-up themselves:
# they create .venv, install pagekit with every extra, and start what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp

.PHONY: install demo test dashboard lab serve bench bench-scale bench-tools lint down clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 10), "pagekit needs Python 3.10+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[all,test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/pagekit demo

test: $(STAMP)
	$(BIN)/python -m pytest

dashboard: $(STAMP)
	$(BIN)/pagekit dashboard

# JupyterLab on the tutorials, offline (no news, update check or PyPI search).
lab: $(STAMP)
	$(BIN)/pagekit lab notebooks

serve: $(STAMP)
	$(BIN)/pagekit serve

bench: $(STAMP)
	$(BIN)/python bench/throughput.py

# Scale figures at 10,000 pages (--pages 100000, --two-hosts: see bench/scale.py).
bench-scale: $(STAMP)
	$(BIN)/python bench/scale.py

# OCRmyPDF, for the benchmark's comparison only (it also needs `apt-get install tesseract-ocr`).
bench-tools:
	test -x .venv-bench/bin/ocrmypdf || ($(PYTHON) -m venv .venv-bench && .venv-bench/bin/pip install -q ocrmypdf)

lint: $(STAMP)
	$(BIN)/ruff check .

down:
	test ! -x $(BIN)/pagekit || $(BIN)/pagekit down

clean: down
	rm -rf $(VENV) pagekit-data demo-results.csv
