# Two commands matter: `make sim` (the simulated Pico with its console) and `make test`.
# Both build their own virtual environment from pinned requirements on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STUBS := .stubs/.installed
ARGS ?=

.PHONY: sim test bench mpy deploy clean chromium

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

$(STUBS): requirements-stubs.txt $(STAMP)
	rm -rf .stubs
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-compile --target .stubs -r requirements-stubs.txt
	touch $(STUBS)

# The simulated Pico on the MicroPython unix port, with the live console. Ctrl-C ends it.
# Scripted: make sim ARGS="--days 30 --speed 0"
sim: $(STAMP)
	@$(BIN)/python -m tools.console watch --sim $(ARGS)

# Everything: CPython and MicroPython-port tests, the Pico board on fakes, type checks.
# The visit report is looked at in a headless Chromium (Debian's package), installed here
# when run as root; otherwise its test says how to get it.
test: $(STAMP) $(STUBS) chromium
	$(BIN)/python -m pytest host_tests $(ARGS)

chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		echo "installing Debian's chromium for the visit-report test" && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
		echo "chromium is not installed (apt-get install chromium): the visit-report test will say so"; }

# Figures: simulation speed, heap, code size (ratios where the machine's speed matters).
bench: $(STAMP)
	$(BIN)/python -m tools.bench $(ARGS)

# The firmware compiled to .mpy, as deployed.
mpy: $(STAMP)
	$(BIN)/python -m tools.build_mpy

# Copy the firmware to a Pico on PORT (default: the first one mpremote finds).
deploy: $(STAMP)
	$(BIN)/python -m tools.deploy $(ARGS)

clean:
	rm -rf $(VENV) .stubs build .pytest_cache .mypy_cache .hypothesis
