# The two commands: `make run` serves the site, `make test` runs the whole suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 5000
export PORT
PO_FILES := $(wildcard translations/*/LC_MESSAGES/messages.po)
MO_FILES := $(PO_FILES:.po=.mo)

.PHONY: run test bench faults install install-dev translations messages clean

# Stamp files: a second `make test` installs nothing unless a requirements file changed.
$(VENV)/.runtime: requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $@

$(VENV)/.dev: $(VENV)/.runtime requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# axe-core for the browser tests' accessibility check, exactly as package-lock.json pins it.
node_modules/.stamp: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

# Compiled catalogues (kept out of git): rebuilt only when their .po file changes.
translations/%/LC_MESSAGES/messages.mo: translations/%/LC_MESSAGES/messages.po | $(VENV)/.runtime
	$(BIN)/pybabel compile --statistics -l $* -i $< -o $@

translations: $(MO_FILES)

# After changing user-facing text: collect it into the .pot and merge it into every .po.
messages: $(VENV)/.runtime
	$(BIN)/pybabel extract -F babel.cfg -k _l -k lazy_gettext --project signup \
		--copyright-holder "signup service" --msgid-bugs-address "the project issue tracker" \
		-w 100 -o translations/messages.pot .
	$(BIN)/pybabel update -i translations/messages.pot -d translations -w 100 --no-fuzzy-matching --ignore-obsolete

install: $(VENV)/.runtime
install-dev: $(VENV)/.dev

run: $(VENV)/.runtime translations
	$(BIN)/flask --app wsgi init-db
	$(BIN)/gunicorn -c gunicorn.conf.py --bind 127.0.0.1:$(PORT) wsgi:app

test: $(VENV)/.dev translations node_modules/.stamp
	$(BIN)/python -m pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache node_modules $(MO_FILES)

# The load generator is Debian's wrk (a separate process, not a Python loop in the server).
# Some figures only: make bench BENCH_ONLY="get_signup wrong_code".
bench: $(VENV)/.dev translations
	@command -v wrk >/dev/null || { [ "$$(id -u)" = 0 ] && apt-get install -y -qq wrk; } || \
		{ echo "make bench needs wrk: apt-get install wrk"; exit 1; }
	$(BIN)/python bench/bench.py $(foreach figure,$(BENCH_ONLY),--only $(figure))

faults: $(VENV)/.dev
	FAULTS_REPORT=docs/reliability.md $(BIN)/python -m pytest tests/faults -v
