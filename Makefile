# Two entry points: `make run` (the main job on embedded defaults) and `make test` (the whole suite).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := true
export FEAST_USAGE := False
export PYTHONHASHSEED := 0

.PHONY: run test test-fast venv lock lint bench clean browser

venv: $(STAMP)

$(STAMP): requirements.lock pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/leadscope run

test: $(STAMP) browser
	$(BIN)/ruff check leadscope features graphs training serving tests benchmarks
	$(BIN)/ruff format --check -q leadscope features graphs training serving tests benchmarks
	$(BIN)/python -m pytest --nbmake tests notebooks

# The fast tier: no generated company (pure functions, contract, schemas, security, templates); CI may run it first.
test-fast: $(STAMP)
	$(BIN)/ruff check leadscope features graphs training serving tests benchmarks
	$(BIN)/python -m pytest -m "not company" -q tests

# The console's browser tests drive Debian's chromium (Playwright with executable_path; never `playwright install`).
browser:
	@test -x /usr/bin/chromium || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null && \
		{ DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null || \
		  { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium >/dev/null; }; }; } || \
		echo "chromium not installed (needs root and apt-get: apt-get install chromium); the console's browser tests will skip"

lint: $(STAMP)
	$(BIN)/ruff check leadscope features graphs training serving tests benchmarks
	$(BIN)/ruff format --check -q leadscope features graphs training serving tests benchmarks

bench: $(STAMP)
	$(BIN)/python benchmarks/score_latency.py

# Re-resolve the lock from requirements.in (needs network access to PyPI).
lock:
	$(BIN)/python -m pip install --quiet uv && $(BIN)/uv pip compile requirements.in -o requirements.lock --python-version 3.11 --generate-hashes

clean:
	rm -rf $(VENV) data mlruns/mlflow.db mlruns/[0-9]* mlruns/models
