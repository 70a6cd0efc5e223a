# Two commands do everything on a fresh machine with Python 3.11, pip and apt:
#   make demo   — the embedded stack and a real bias incident, end to end
#   make test   — lint, type-check, check the layers and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: demo test lint clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m demo

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-logo

test: $(STAMP) lint
	./scripts/ensure-test-programs.sh
	$(BIN)/python -m pytest -n 3 --durations=15   # three processes: most tests wait on real servers, not on the CPU

clean:
	rm -rf $(VENV) data .mypy_cache .ruff_cache .pytest_cache
