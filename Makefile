# Two commands on a fresh machine: `make demo` and `make test`. Both install what they need.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint pytest demo bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	# torch first and pinned: it is the CPU build on local disk; an unpinned torch pulls a CUDA build.
	$(BIN)/pip install --quiet torch==2.13.0
	# zoo: timm + transformers (+ the torchvision built for torch 2.13.0) for tests/zoo and bench/zoo.py
	$(BIN)/pip install --quiet -e ".[dev,zoo]"
	# the compiled CPU QAT kernels (g++ + ninja, ~20 s once; without them QAT takes the Python path)
	$(BIN)/python -c "from qdqforge.runtime.kernels import cpu_ext; cpu_ext.main()"
	touch $(STAMP)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

pytest: install
	$(BIN)/python -m pytest -q -m "not slow"

test: lint pytest

demo: install
	$(BIN)/python -m qdqforge.demo

bench: install
	$(BIN)/pip install --quiet -e ".[dev,zoo,bench]"
	$(BIN)/python bench/roundtrip.py
	$(BIN)/python bench/qat.py
	$(BIN)/python bench/ptq.py

clean:
	rm -rf $(VENV) demo_out .pytest_cache

# Debian's headless chromium for the diff-viewer tests (tests/tools/test_diff_browser.py, marker
# `browser`); they skip without it. Playwright drives /usr/bin/chromium: no browser download.
.PHONY: browser
browser:
	@if [ -x /usr/bin/chromium ]; then echo "chromium already installed: /usr/bin/chromium"; \
	else apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; fi
