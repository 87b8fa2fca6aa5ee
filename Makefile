# The two commands of the README, and a few more. Each target sets up what it needs:
# .venv is created and the project installed on first use (only Python is required).

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo up test test-fast bench soak lint clean

$(STAMP): pyproject.toml
	@echo "==> creating $(VENV) and installing baocao with its dependencies (first run only, a few minutes)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --progress-bar on -e '.[dev]'
	$(BIN)/python -c "import flows.cli, baocao, prefect.server.api.server"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/baocao demo

up: $(STAMP)
	$(BIN)/baocao up

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q -n 2 --dist loadfile

test-fast: $(STAMP)
	$(BIN)/python -m pytest -q -m "not slow"

bench: $(STAMP)
	$(BIN)/python -m benchmarks

soak: $(STAMP)
	BAOCAO_SOAK=1 $(BIN)/python -m pytest -q -m soak

lint: $(STAMP)
	$(BIN)/ruff check .

clean:
	rm -rf var/demo .pytest_cache
