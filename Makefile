# Two commands do everything on a fresh machine: `make run` (the study) and `make test`.
# Both create .venv if absent, install torch==2.13.0 first, then mtbc with its extras.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.mtbc-installed
LAB_STAMP := $(VENV)/.mtbc-lab-installed
PARAMS ?= params/demo.yaml

.PHONY: run run-fixtures test test-fast lab lint bench demo clean-reports

# The last step downloads (never installs) the musicnn 0.1.0 wheel: the tests check that the
# musicnn weights shipped in mtbc convert from it byte for byte. Without a package index the
# download is skipped (mtbc itself never needs the wheel) and that one test says so.
$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --upgrade pip
	$(PY) -m pip install torch==2.13.0
	$(PY) -m pip install -e '.[dev]'
	-$(PY) -m pip download --no-deps --dest $(VENV)/musicnn musicnn==0.1.0
	@touch $(STAMP)

run: $(STAMP)
	$(VENV)/bin/mtbc run --params $(PARAMS)

# The whole pipeline offline on random-weight fixture models (reports say they are not results).
run-fixtures: $(STAMP)
	$(VENV)/bin/mtbc fixtures
	$(VENV)/bin/mtbc run --params params/fixtures.yaml

# Two workers (pytest-xdist); TEST_WORKERS=0 runs in this process. The whole suite keeps each
# file on one worker (the end-to-end runs' module fixtures are built once): 6 min 55 s on
# 2 cores (December 2026); test-fast lets idle workers take tests from busy ones: 1 min 55 s.
TEST_WORKERS ?= 2
XDIST = $(if $(filter 0,$(TEST_WORKERS)),,-n $(TEST_WORKERS) --dist $(1))

test: $(STAMP)
	$(PY) -m pytest $(call XDIST,loadfile)

# Everything but the end-to-end runs (marked slow).
test-fast: $(STAMP)
	$(PY) -m pytest -m "not slow" $(call XDIST,worksteal)

lint: $(STAMP)
	$(VENV)/bin/ruff check .

demo: $(STAMP)
	$(VENV)/bin/mtbc demo

bench: $(STAMP)
	$(VENV)/bin/mtbc bench

# JupyterLab on the notebooks. Its kernels start in notebooks/; mtbc finds the project from
# there, and a notebook opened by hand continues the latest `mtbc run` (its parameters cell's
# lab_run). The lab extra is installed once (its stamp), again only when pyproject.toml changes.
$(LAB_STAMP): $(STAMP) pyproject.toml
	$(PY) -m pip install -e '.[dev,lab]'
	@touch $(LAB_STAMP)

lab: $(LAB_STAMP)
	$(VENV)/bin/jupyter lab notebooks/

clean-reports:
	rm -rf reports/*/
