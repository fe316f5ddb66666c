# Two commands matter: `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# Pick the first Python >= 3.12 on PATH (pyenv shims honour .python-version).
PYTHON ?= $(shell for p in python3.13 python3.12 python3 python; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null && { echo $$p; break; }; done)
DATABASE_URL ?= postgres://root@127.0.0.1:5432/test

.PHONY: pgbouncer-deps netns-deps prometheus-deps browser-deps venv demo test docs lint typecheck unit pg sqlite browser bench bench-admin clean

$(VENV)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: need Python >= 3.12 on PATH" >&2; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

venv: $(VENV)/.installed

demo: venv  ## set up and run the example project on SQLite: web server + worker + jobs
	$(PY) example_project/rundemo.py

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: venv
	$(VENV)/bin/mypy django_jobs example_project

# The documentation site (Sphinx + MyST): warnings are errors (-W, all of them reported:
# --keep-going), and so is every cross-reference to a django_jobs name that does not
# resolve (-n). Output in docs/_build/html.
docs: venv
	$(PY) -m sphinx -W --keep-going -n -q -b html docs docs/_build/html

browser-deps: venv
	@command -v chromium >/dev/null 2>&1 || { \
		echo "installing Debian chromium for browser tests"; \
		(apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || \
		{ echo "error: chromium is required for browser tests (apt-get install chromium)" >&2; exit 1; }; }

pgbouncer-deps:  ## Debian's pgbouncer, for the e2e tests run through it (tests/e2e/test_pgbouncer.py)
	@command -v pgbouncer >/dev/null 2>&1 || test -x /usr/sbin/pgbouncer || { \
		echo "installing Debian pgbouncer for the PgBouncer e2e tests"; \
		(apt-get update -qq && apt-get install -y -qq pgbouncer >/dev/null) || \
		{ echo "error: pgbouncer is required for the PgBouncer e2e tests (apt-get install pgbouncer)" >&2; exit 1; }; }

netns-deps:  ## iproute2's `ip`, for the worker hosts in network namespaces (tests/e2e/test_many_hosts.py; needs root)
	@command -v ip >/dev/null 2>&1 || { \
		echo "installing iproute2 for the network-namespace tests"; \
		(apt-get update -qq && apt-get install -y -qq iproute2 >/dev/null) || \
		{ echo "error: iproute2 is required for the network-namespace tests (apt-get install iproute2)" >&2; exit 1; }; }

prometheus-deps:  ## Debian's prometheus + promtool: the dashboard's queries checked and run (tests/e2e/test_prometheus.py)
	@command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1 || { \
		echo "installing Debian prometheus for the dashboard tests"; \
		(apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus >/dev/null) || \
		{ echo "error: prometheus is required for the dashboard tests (apt-get install prometheus)" >&2; exit 1; }; }

test: venv browser-deps pgbouncer-deps netns-deps prometheus-deps lint typecheck docs  ## set up and run everything: lint, types, tests on SQLite and PostgreSQL
	DATABASE_URL=sqlite:///$(CURDIR)/var/migrations-check.sqlite3 $(PY) manage.py makemigrations --check --dry-run
	@# Two passes side by side (tests/run_passes.py), SQLite without the postgres-marked tests.
	@# DJANGO_JOBS_TEST_SPLIT: tests that cannot touch the database run in the SQLite pass only,
	@# browser tests in the PostgreSQL pass only (tests/conftest.py).
	DATABASE_URL=$(DATABASE_URL) $(PY) tests/run_passes.py

bench: venv
	$(PY) bench/run.py

bench-compare: venv  ## django_jobs at several git revisions in one run: make bench-compare REVS="699352c HEAD"
	$(PY) bench/compare.py $(REVS) --write $(COMPARE_ARGS)

bench-admin: venv  ## admin page timings with 1,000,000 jobs (own database), into bench/RESULTS.md
	$(PY) bench/admin_pages.py --write

clean:
	rm -rf $(VENV) build docs/_build *.egg-info .mypy_cache .ruff_cache .pytest_cache demo.sqlite3*
