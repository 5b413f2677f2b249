# The two commands of the README:  `make run` (set up, then the main job) and `make test` (set up, then the tests).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PARAMS ?= quick
# The authors' release: $HTNET_DATA_DIR if set, else a copy beside the project (as on the CI machine), else ./data/htnet-release
# (where `make fetch` puts it).
ifeq ($(HTNET_DATA_DIR),)
  ifneq ($(wildcard ../shared/data/htnet-release/combined_3_class2_for_optical_flow.csv),)
    export HTNET_DATA_DIR := $(abspath ../shared/data/htnet-release)
  endif
endif

# A CSV transcription of the paper's tables (tests/test_paper_values.py): beside the project when there, and then
# required; elsewhere those tests are skipped with the reason (the CSVs are not part of the project).
ifeq ($(HTNET_PAPER_DIR),)
  ifneq ($(wildcard ../shared/paper/table1_datasets.csv),)
    export HTNET_PAPER_DIR := $(abspath ../shared/paper)
  endif
endif

.PHONY: setup run reproduce test fetch loso bench clean
setup: $(VENV)/.installed

# --no-compile: Python byte-compiles the modules a process imports, not every file of the dependencies up front.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile -e '.[dev,cluster]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

# The main job: every notebook in order (papermill), tables and figures into figures/$(PARAMS)/.
run: reproduce
reproduce: setup
	$(PY) -m htnet_lib reproduce --params $(PARAMS)

# Pyflakes rules, then the unit tests and every notebook under nbval with its smoke defaults, on TEST_WORKERS
# pytest-xdist workers (the notebooks in order on one of them). OMP_WAIT_POLICY=PASSIVE: a worker's idle torch
# threads sleep instead of spinning on the cores the other worker trains on (spinning made two workers slower than one).
TEST_WORKERS ?= 2
test: setup
	$(PY) -m ruff check --select F htnet_lib tests notebooks
	OMP_WAIT_POLICY=PASSIVE HTNET_REQUIRE_DATA=1 HTNET_REQUIRE_RAY=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadgroup

loso: setup
	$(PY) -m htnet_lib loso --params params/$(PARAMS)/loso.yaml

fetch: setup
	$(PY) -m htnet_lib fetch

# The compiled engine is checked against the eager one first: the bench is the only place that uses it.
bench: setup
	HTNET_COMPILE_TEST=1 HTNET_REQUIRE_DATA=1 $(PY) -m pytest -q tests/test_loso.py tests/test_studies.py -k "compiled_batched_engine or compile_overhead"
	$(PY) -m htnet_lib bench --study params/$(PARAMS)/bench.yaml --out figures/$(PARAMS)/bench.json

clean:
	rm -rf $(VENV) runs executed .pytest_cache

# JupyterLab in headless Chromium: notebook 01, Run All Cells, no error, a figure, a screenshot in executed/browser/
# (docs/browser-test.md). Installs Debian's chromium and playwright first (tools/browser-setup.sh); not part of `test`.
.PHONY: browser-test
browser-test: setup
	tools/browser-setup.sh $(PY)
	HTNET_BROWSER_TEST=1 HTNET_REQUIRE_DATA=1 $(PY) -m pytest -q tests/browser

# Binder's environment rebuilt: a fresh venv from environment.yml's pip list, postBuild, then notebook 01 with smoke
# params; prints the install time and the kernel's peak memory (tests/binder). Downloads several GB; not part of `test`.
.PHONY: binder-test
binder-test: setup
	HTNET_BINDER_TEST=1 HTNET_REQUIRE_DATA=1 $(PY) -m pytest -q tests/binder
