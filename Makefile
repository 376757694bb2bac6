# Sotong — the README's commands. `make run` starts the product, `make test` runs the suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test test-sqlite test-postgres lint bench lock clean

$(STAMP): requirements.lock pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "Sotong needs Python 3.11 or newer"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# axe-core for the browser tests' accessibility checks, from package-lock.json. Where npm is
# missing those tests skip (CI installs npm, and there they fail instead).
NODE_STAMP := node_modules/.installed
NODE_PACKAGES := $(if $(shell command -v npm 2>/dev/null),$(NODE_STAMP))

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

run: $(STAMP)
	$(BIN)/sotong migrate --noinput
	$(BIN)/sotong createcachetable
	$(BIN)/sotong rebuild-portal --if-needed
	$(BIN)/sotong load-directory
	$(BIN)/sotong triage bootstrap
	$(BIN)/sotong collectstatic --noinput --verbosity 0
	@if [ "$${SOTONG_DEMO:-1}" != "0" ]; then $(BIN)/sotong setup-demo; fi
	$(BIN)/sotong serve

# The whole suite on SQLite; again on PostgreSQL when SOTONG_TEST_DATABASE_URL is set.
test: $(STAMP) $(NODE_PACKAGES) lint
	$(BIN)/pytest
	@if [ -n "$$SOTONG_TEST_DATABASE_URL" ]; then \
		echo "== again on PostgreSQL ($$SOTONG_TEST_DATABASE_URL)"; \
		SOTONG_DATABASE_URL="$$SOTONG_TEST_DATABASE_URL" $(BIN)/pytest; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check sotong bench
	$(BIN)/ruff format --check sotong bench
	$(BIN)/mypy sotong
	$(BIN)/sotong makemigrations --check --dry-run

bench: $(STAMP)
	$(BIN)/python bench/run.py
	$(BIN)/python bench/triage.py
	$(BIN)/python bench/default_model.py
	$(BIN)/python bench/channels.py
	$(BIN)/python bench/portal.py

lock:
	$(BIN)/pip-compile --quiet --extra dev --generate-hashes --strip-extras --allow-unsafe -o requirements.lock pyproject.toml

clean:
	rm -rf $(VENV) var
