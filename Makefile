# Two commands do all the set-up on a fresh Debian machine:
#   make demo   installs the agent in .venv and serves the simulated VPN host
#   make test   installs what the tests need (Debian's prometheus, alertmanager, mksh,
#               mandoc) and runs them all
#   make lint   mypy --strict on the package, ruff on the package, tests and bench (part of test)
#   make golden rewrites tests/fixtures/golden/demo-metrics.prom after a deliberate change
PYTHON ?= python3
VENV ?= .venv
LISTEN ?= 127.0.0.1:8469

.PHONY: demo test deps venv bench lint golden

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install -q --upgrade pip
	$(VENV)/bin/pip install -q -e '.[test]'
	touch $@

venv: $(VENV)/.installed

# promtool and prometheus for the rule tests and the end-to-end scrape,
# prometheus-alertmanager (and its amtool) for the paging test, mksh to run the
# rc.d script the way OpenBSD's ksh would, mandoc to lint the man page.
DEB_TOOLS = promtool:prometheus prometheus:prometheus mksh:mksh \
	prometheus-node-exporter:prometheus-node-exporter \
	prometheus-alertmanager:prometheus-alertmanager amtool:prometheus-alertmanager \
	mandoc:mandoc
deps:
	@missing=""; for t in $(DEB_TOOLS); do \
		command -v $${t%%:*} >/dev/null || missing="$$missing $${t#*:}"; \
	done; \
	if [ -n "$$missing" ]; then \
		SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
		$$SUDO apt-get update -q && \
		DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends \
			$$(echo $$missing | tr ' ' '\n' | sort -u); \
	fi

demo: venv
	$(VENV)/bin/obsdvpn-agent --demo serve --listen $(LISTEN)

test: deps venv lint
	$(VENV)/bin/python -m pytest -q

lint: venv
	$(VENV)/bin/python -m mypy --strict agent/obsdvpn_agent
	$(VENV)/bin/python -m ruff check agent tests bench

golden: venv
	OBSDVPN_REGEN_GOLDEN=1 $(VENV)/bin/python -m pytest -q tests/test_golden.py
	git diff --stat -- tests/fixtures/golden/

bench: deps venv
	$(VENV)/bin/python bench/bench.py
