# The executable book: two commands on a fresh machine.
#
#   make book      set up, execute changed notebooks (jupyter-book cache) and build _build/html (-W)
#   make test      set up, then library tests, nbval over every notebook, HTML build with the
#                  stored outputs (-W), page and offline checks, headless-browser check
#   make execute   re-execute every notebook in place (chapters first, then the appendix) and record
#                  per-notebook wall times in book/appendix/timings.csv
#   make setup     .venv + torch pin + the package with its book/test extras + offline MathJax
#
# Stored outputs are produced at CNNBIAS_SCALE=book on the CPU (float64); execute, nbval and the
# book build use that environment whatever the caller's shell exports (see BOOK_ENV).

SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
MAKEFLAGS += --no-print-directory

PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
JB := $(VENV)/bin/jupyter-book
# The notebooks' python3 kernelspec runs `python`: make it the venv's.
export PATH := $(abspath $(VENV))/bin:$(PATH)

TORCH_PIN := torch==2.13.0
MATHJAX_VERSION := 3.2.2
MATHJAX_DIR := book/_static/mathjax
SETUP_STAMP := $(VENV)/.cnnbias-setup
MATHJAX_STAMP := $(MATHJAX_DIR)/.mathjax-$(MATHJAX_VERSION)

# Every variable that changes stored outputs is fixed here, whatever the caller's shell exports:
# scale, device, dtype, threads (one torch thread per kernel), no MNIST folder (bundled digits).
# THREADS (default 1) may be raised to check that outputs do not depend on it (make test-nbval THREADS=2).
THREADS ?= 1
BOOK_ENV := env -u CNNBIAS_MNIST_DIR CNNBIAS_SCALE=book CNNBIAS_DEVICE=cpu CNNBIAS_DTYPE=float64 \
  CNNBIAS_THREADS=$(THREADS) CNNBIAS_PROGRESS=0 PYTHONHASHSEED=0
# Notebooks executed (or checked by nbval) at once, one kernel each with one thread.
JOBS ?= 2
# ATEN_CPU_CAPABILITY for nbval: empty = this CPU's native kernels; `default` or `avx2` forces a path.
ATEN ?=
JB_FLAGS := --builder html -W -n --keep-going
# The build check of `make test` uses the stored outputs: the same config with execution off.
STORED_CONFIG := _build/_config_stored.yml
TIMEOUT ?= 1800
NB ?=

.PHONY: help setup book html-stored execute chapter-runs test test-lib test-nbval test-html clean

help:
	@echo "make book     set up, execute (cache) and build the HTML book into _build/html"
	@echo "make test     set up, library tests, nbval, HTML build with stored outputs, browser test"
	@echo "make execute  re-execute notebooks in place (NB=book/part1/x.ipynb for one, then the claims summary), record times"
	@echo "make chapter-runs  run the CPU-feasible chapters whole at paper scale (records in results/chapters)"
	@echo "make setup    create .venv, install torch pin, the package, extras and offline MathJax"
	@echo "make clean    remove _build"

# ---------------------------------------------------------------------------------------------
setup: $(SETUP_STAMP) $(MATHJAX_STAMP)

$(SETUP_STAMP): pyproject.toml
	@test -x $(PY) || { echo "creating $(VENV)"; $(PYTHON) -m venv $(VENV); }
	@# torch first: the pin resolves to the CPU wheel; anything pulling torch later finds it installed.
	$(PY) -m pip install -q "$(TORCH_PIN)"
	$(PY) -m pip install -q -e ".[book,test]"
	@# The compiled one-hot max-pool kernel, once per machine (without a compiler: the reference path).
	@$(PY) -m cnnbias._ext || echo "cnnbias: kernel not built; the pure-torch reference path will be used"
	@touch $@

$(MATHJAX_STAMP): $(SETUP_STAMP)
	@# MathJax 3.2.2 from the PyPI package django-static-mathjax (installed with the book extra): the
	@# es5 tree (tex-chtml.js, output/chtml/fonts, and the extensions TeX autoloads).  No npm needed.
	@src=$$($(PY) -c 'import mathjax, pathlib; print(pathlib.Path(mathjax.__file__).parent / "static" / "mathjax" / "es5")'); \
	  test -f "$$src/tex-chtml.js" || { echo "MathJax not found in the django-static-mathjax package ($$src)"; exit 1; }; \
	  rm -rf $(MATHJAX_DIR) && mkdir -p $(dir $(MATHJAX_DIR)) && cp -r "$$src" $(MATHJAX_DIR)
	@test -f $(MATHJAX_DIR)/tex-chtml.js && test -d $(MATHJAX_DIR)/output/chtml/fonts
	@touch $@
	@echo "MathJax $(MATHJAX_VERSION) in $(MATHJAX_DIR)"

# ---------------------------------------------------------------------------------------------
book: setup
	@mkdir -p _build
	@# Execute the chapters missing from jupyter-book's cache, JOBS at a time (the build then reads them).
	@$(BOOK_ENV) $(PY) -m booktools cache --jobs $(JOBS) --timeout $(TIMEOUT) || { rm -rf _build/html; exit 1; }
	@# On failure no HTML is left behind that would show stale outputs as if they were fresh.
	@$(BOOK_ENV) $(JB) build . $(JB_FLAGS) > _build/book.log 2>&1 || { rm -rf _build/html; \
	  echo "book: FAILED: $$(grep -m1 -E 'WARNING|ERROR|Error|Exception' _build/book.log | cut -c1-300) (full log: _build/book.log)" >&2; exit 1; }
	@echo "book: _build/html/index.html (log: _build/book.log)"

execute: setup
	@$(PY) -m cnnbias index > /dev/null
	@$(BOOK_ENV) $(PY) -m booktools execute --jobs $(JOBS) --timeout $(TIMEOUT) $(NB)

# Chapters that fit on a CPU at the papers' scale, run whole; their records go to results/chapters/
PAPER_CHAPTERS ?= book/part1/theorem4_perron_frobenius.ipynb book/part1/limit_directions.ipynb
chapter-runs: setup
	@$(PY) -m cnnbias index > /dev/null
	@$(BOOK_ENV) $(PY) -m booktools chapter-run --scale paper $(PAPER_CHAPTERS)
	@$(PY) -m booktools costs

html-stored: setup
	@mkdir -p _build
	@sed -E 's/^([[:space:]]*execute_notebooks[[:space:]]*:).*/\1 "off"/' _config.yml > $(STORED_CONFIG)
	@grep -q 'execute_notebooks: "off"' $(STORED_CONFIG)
	@$(BOOK_ENV) $(JB) build . --config $(STORED_CONFIG) $(JB_FLAGS) > _build/book-stored.log 2>&1 || { rm -rf _build/html; \
	  echo "html-stored: FAILED: $$(grep -m1 -E 'WARNING|ERROR|Error|Exception' _build/book-stored.log | cut -c1-300) (full log: _build/book-stored.log)" >&2; exit 1; }
	@echo "html-stored: _build/html built from the stored outputs"

# ---------------------------------------------------------------------------------------------
test: setup
	@$(MAKE) test-lib
	@$(MAKE) test-nbval
	@$(MAKE) test-html

test-lib: setup
	$(VENV)/bin/ruff check lib tools tests benchmarks
	$(VENV)/bin/lint-imports
	$(PY) -m pytest tests/ -q -m "not book and not browser" -p no:cacheprovider

test-nbval: setup
	$(BOOK_ENV) $(if $(ATEN),ATEN_CPU_CAPABILITY=$(ATEN)) $(PY) -m pytest --nbval --nbval-current-env --nbval-cell-timeout=$(TIMEOUT) \
	  --nbval-sanitize-with tests/nbval_sanitize.cfg -p no:cacheprovider -q -n $(JOBS) --dist loadfile book/

test-html: html-stored
	CNNBIAS_REQUIRE_HTML=1 $(PY) -m pytest -q -p no:cacheprovider tests/test_book_html.py tests/test_browser.py

clean:
	rm -rf _build
