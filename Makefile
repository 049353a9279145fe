# Two commands do everything on a fresh machine:  `make run`  and  `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMPS := .stamps
SIMRS_SOURCES := $(shell find simrs/src simrs/python -type f \( -name '*.rs' -o -name '*.py' -o -name '*.pyi' \) 2>/dev/null) simrs/Cargo.toml simrs/pyproject.toml

.PHONY: setup run demo test test-layers test-rust test-python test-chaos lint clean

setup: $(STAMPS)/deps $(STAMPS)/simrs

$(STAMPS)/deps: pyproject.toml
	@mkdir -p $(STAMPS)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	# The bundled pip backtracks badly on this dependency set; a current one resolves it.
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@

$(STAMPS)/simrs: $(STAMPS)/deps $(SIMRS_SOURCES) scripts/configure-cargo.sh
	./scripts/configure-cargo.sh
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pip install --quiet --no-build-isolation ./simrs
	@touch $@

run: setup
	$(BIN)/oppen demo

demo: run

test-rust: $(STAMPS)/simrs
	cd simrs && cargo test --quiet

# The layer contract in pyproject.toml: a wrong-way import between app's packages fails here.
test-layers: setup
	$(BIN)/lint-imports

# Three workers on two cores: the Terraform apply (mostly the AWS provider's polling) in one,
# the rest spread over all three, since many tests wait on processes they start
# (docs/operations.md has the timings of two, three and four).
# The suite starts some 800 Python processes. Where bytecode is not written
# (PYTHONDONTWRITEBYTECODE, set on this project's VMs) each would compile Oppen's modules again,
# up to 0.8 s of CPU apiece; compiled once here, they load from __pycache__.
test-python: setup
	$(BIN)/python -m compileall -q app tests
	$(BIN)/python -m pytest -n 3 --dist loadgroup

test: setup test-layers test-rust test-python

# The chaos test with real training jobs (minutes per database), on demand: not in `make test`.
test-chaos: setup
	$(BIN)/python -m pytest -m chaos -s

lint: setup
	$(BIN)/ruff check app tests scripts simrs/python
	cd simrs && cargo clippy --quiet -- -D warnings

clean:
	rm -rf $(VENV) $(STAMPS) simrs/target simrs/.cargo
