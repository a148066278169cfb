# memberscore developer commands.  `make demo` and `make test` work on a fresh clone
# with Python 3.11 and Java 17: they create (or reuse) .venv/ and install the pinned
# dependencies and the project into it first.

PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
CONSTRAINTS := requirements/constraints.txt
STAMP  := $(VENV)/.installed
# Delta's jars for local Spark, pinned in requirements/jars.txt, fetched with Maven.
JAR_PINS := requirements/jars.txt
JARS     := $(VENV)/share/memberscore/jars
# The local Kafka broker (Apache Kafka, KRaft): requirements/broker/pom.xml pins it,
# requirements/broker-jars.txt pins every jar Maven resolves for it.
BROKER_POM  := requirements/broker/pom.xml
BROKER_PINS := requirements/broker-jars.txt
BROKER_JARS := $(VENV)/share/memberscore/broker-jars
# The CSS, scripts and fonts of GX's Data Docs pages, pinned in
# requirements/data-docs-assets/package-lock.json, fetched with npm.
DOCS_ASSET_PINS := requirements/data-docs-assets
DOCS_ASSETS     := $(VENV)/share/memberscore/data-docs-assets
# Every pip call (and the build environment of our own package) uses the pins.
export PIP_CONSTRAINT := $(abspath $(CONSTRAINTS))
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install jars test test-faults demo bench bench-scale lint typecheck wheel docs constraints clean check-tools

install: $(STAMP) $(JARS)/jars.txt $(BROKER_JARS)/broker-jars.txt $(DOCS_ASSETS)/package-lock.sha256

# Once per pin change: the manifest is copied in last, after every jar checked out.
$(JARS)/jars.txt: $(JAR_PINS) requirements/fetch-jars.sh
	@requirements/fetch-jars.sh $(JAR_PINS) $(JARS)

$(BROKER_JARS)/broker-jars.txt: $(BROKER_POM) $(BROKER_PINS) requirements/fetch-broker-jars.sh
	@requirements/fetch-broker-jars.sh $(BROKER_POM) $(BROKER_PINS) $(BROKER_JARS)

# Fetch again whatever is missing or does not match its pinned sha256.
jars:
	@requirements/fetch-jars.sh $(JAR_PINS) $(JARS)
	@requirements/fetch-broker-jars.sh $(BROKER_POM) $(BROKER_PINS) $(BROKER_JARS)

# Once per lock change: the manifest (the lock's sha256) is written last, after npm ci.
$(DOCS_ASSETS)/package-lock.sha256: $(DOCS_ASSET_PINS)/package.json $(DOCS_ASSET_PINS)/package-lock.json $(DOCS_ASSET_PINS)/.npmrc requirements/fetch-data-docs-assets.sh
	@requirements/fetch-data-docs-assets.sh $(DOCS_ASSET_PINS) $(DOCS_ASSETS)

$(STAMP): setup.py $(CONSTRAINTS)
	@$(MAKE) --no-print-directory check-tools
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e ".[local,dev]"
	@touch $@

check-tools:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "make: $(PYTHON) not found; install Python 3.11 or run 'make PYTHON=/path/to/python3.11'" >&2; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else 1)' || { echo "make: $(PYTHON) is not Python 3.11" >&2; exit 1; }
	@java -version >/dev/null 2>&1 || { echo "make: Java 17 is required for local Spark and 'java' was not found; install a JDK 17 (e.g. apt-get install openjdk-17-jre-headless)" >&2; exit 1; }
	@command -v mvn >/dev/null 2>&1 || test -f $(JARS)/jars.txt || { echo "make: Maven ('mvn') is required once, to fetch Delta's jars (requirements/jars.txt); install it (e.g. apt-get install maven)" >&2; exit 1; }
	@command -v mvn >/dev/null 2>&1 || test -f $(BROKER_JARS)/broker-jars.txt || { echo "make: Maven ('mvn') is required once, to fetch the local Kafka broker (requirements/broker/pom.xml); install it (e.g. apt-get install maven)" >&2; exit 1; }
	@command -v npm >/dev/null 2>&1 || test -f $(DOCS_ASSETS)/package-lock.sha256 || { echo "make: npm is required once, to fetch the Data Docs assets (requirements/data-docs-assets/); install it (e.g. apt-get install npm)" >&2; exit 1; }

# pytest exits 5 when it collected no test: that is a failure here, not a pass.
test: install
	@$(PY) -m pytest; rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "make test: pytest collected no tests; failing" >&2; exit 1; fi; \
	exit $$rc

# Real runs under bad input, kills, warehouse faults, concurrency and data-quality
# failures (docs/reliability.md): about 10-15 minutes, homes under .memberscore-faults/.
test-faults: install
	$(PY) -m tests.faults

demo: install
	$(VENV)/bin/memberscore demo

bench: install
	$(PY) -m benchmarks

bench-scale: install
	$(PY) -m benchmarks.scale

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

wheel: install
	$(PY) -m build --wheel --no-isolation --outdir dist .

docs: install
	$(PY) -m memberscore.feature_docs

# Re-resolve the pins from setup.py's ranges (needs the package registry).
constraints:
	rm -rf /tmp/memberscore-constraints && $(PYTHON) -m venv /tmp/memberscore-constraints
	PIP_CONSTRAINT= /tmp/memberscore-constraints/bin/pip install --quiet ".[local,dev]"
	@echo "review and copy: /tmp/memberscore-constraints/bin/pip freeze --exclude memberscore"

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache
