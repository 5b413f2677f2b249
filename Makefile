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

.PHONY: setup run test fetch loso bench clean
setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	$(PY) -m ipykernel install --sys-prefix --name python3 >/dev/null
	touch $@

run: setup
	$(PY) -m htnet_lib loso --params params/$(PARAMS).yaml

test: setup
	HTNET_REQUIRE_DATA=1 $(PY) -m pytest -q

fetch: setup
	$(PY) -m htnet_lib fetch

bench: setup
	$(PY) -m htnet_lib bench --params params/$(PARAMS).yaml

clean:
	rm -rf $(VENV) runs .pytest_cache
