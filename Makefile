# Two commands matter: `make sim` (the simulated Pico with its console) and `make test`.
# Both build their own virtual environment from pinned requirements on first use.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
STUBS := .stubs/.installed
ARGS ?=

.PHONY: sim test bench mpy deploy clean chromium firmware toolchain node emu
NODE_STAMP := node_modules/.installed

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

# The emulated Pico (the firmware image on an emulated RP2040) with the live console, as
# `make sim` is for the simulated one. Its flash is kept in build/emu/flash.bin.
# Scripted: make emu ARGS="--days 1 --speed 0"
emu: $(STAMP) firmware $(NODE_STAMP)
	$(BIN)/python -m tools.console watch --emu --flash build/emu/flash.bin $(ARGS)

# Everything: CPython and MicroPython-port tests, the Pico board on fakes, type checks,
# the firmware image built and run on the emulated RP2040. The visit report is looked at
# in a headless Chromium (Debian's package), installed here when run as root; otherwise
# its test says how to get it.
test: $(STAMP) $(STUBS) chromium firmware $(NODE_STAMP)
	$(BIN)/python -m pytest host_tests $(ARGS)

chromium:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
		echo "installing Debian's chromium for the visit-report test" && \
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
		echo "chromium is not installed (apt-get install chromium): the visit-report test will say so"; }

# Figures: simulation speed, heap, code size (ratios where the machine's speed matters),
# and the firmware on the emulated RP2040.
bench: $(STAMP) firmware $(NODE_STAMP)
	$(BIN)/python -m tools.bench $(ARGS)

# The firmware compiled to .mpy, as deployed.
mpy: $(STAMP)
	$(BIN)/python -m tools.build_mpy

# Copy the firmware to a Pico on PORT (default: the first one mpremote finds).
deploy: $(STAMP)
	$(BIN)/python -m tools.deploy $(ARGS)

clean:
	rm -rf $(VENV) .stubs build node_modules .pytest_cache .mypy_cache .hypothesis

# ---- the firmware image: MicroPython for the Pico with the pump frozen into flash ----------
# Built offline from the pinned sources in $(VENDOR) (a tarball checked against its
# SHA256SUMS): picotool without USB, mpy-cross, then MicroPython's rp2 port with
# manifest.py. Each step leaves a stamp, so an unchanged tree rebuilds nothing; a step that
# fails leaves no stamp and no image, so nothing half-built is used.
#   make firmware                  build/firmware/RPI_PICO/firmware.uf2
#   make firmware BOARD=RPI_PICO2  the Pico 2 (RP2350): built, not emulated
VENDOR ?= ../shared/vendor
BOARD ?= RPI_PICO
JOBS ?= 2
ARM_GCC ?= arm-none-eabi-gcc
TOOLCHAIN_PACKAGES := gcc-arm-none-eabi libnewlib-arm-none-eabi
TARBALL := $(VENDOR)/rp2-toolchain-src.tar.xz
SRC := build/src
MPY_DIR := $(SRC)/micropython
SRC_STAMP := $(SRC)/.extracted
PICOTOOL := build/picotool
PICOTOOL_STAMP := $(PICOTOOL)/.installed
MPY_CROSS := $(MPY_DIR)/mpy-cross/build/mpy-cross
FW := build/firmware/$(BOARD)
UF2 := $(FW)/firmware.uf2
FW_SOURCES := manifest.py $(wildcard firmware/*.py firmware/pump/*.py boards/*.py boards/pico/*.py)

firmware: $(UF2)
	@$(PYTHON) tools/fwinfo.py $(UF2) $(MPY_DIR) $(BOARD)

$(SRC_STAMP): $(TARBALL)
	@test -r $(VENDOR)/SHA256SUMS || { echo "make: $(VENDOR)/SHA256SUMS is missing. The firmware is built from the pinned sources in VENDOR (default ../shared/vendor); point VENDOR at a folder holding rp2-toolchain-src.tar.xz and its SHA256SUMS." >&2; exit 2; }
	@cd $(VENDOR) && grep ' rp2-toolchain-src.tar.xz$$' SHA256SUMS | sha256sum --check --status || { echo "make: $(TARBALL) does not match its checksum in $(VENDOR)/SHA256SUMS (damaged or a different version). Replace it with the pinned tarball; nothing was extracted." >&2; exit 2; }
	rm -rf $(SRC) $(SRC).tmp
	mkdir -p $(SRC).tmp
	tar -xJf $(TARBALL) -C $(SRC).tmp
	mv $(SRC).tmp $(SRC)
	touch $@

$(TARBALL):
	@echo "make: $(TARBALL) is missing. The firmware is built offline from the pinned sources in VENDOR (default ../shared/vendor, see docs/pico.md); point VENDOR at the folder that holds rp2-toolchain-src.tar.xz and SHA256SUMS." >&2; exit 2

# The ARM cross-compiler: Debian's packages, installed here when missing (as root, with
# apt-get; TOOLCHAIN_INSTALL=no only says what to run).
TOOLCHAIN_INSTALL ?= auto
toolchain:
	@command -v $(ARM_GCC) >/dev/null 2>&1 || { \
	  if [ "$(TOOLCHAIN_INSTALL)" != no ] && [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	    echo "make: installing the ARM toolchain ($(TOOLCHAIN_PACKAGES))"; \
	    (apt-get install -y -q $(TOOLCHAIN_PACKAGES) || { apt-get update -q && apt-get install -y -q $(TOOLCHAIN_PACKAGES); }) >/dev/null \
	      || { echo "make: installing $(TOOLCHAIN_PACKAGES) failed" >&2; exit 2; }; \
	  else \
	    echo "make: the ARM cross-compiler ($(ARM_GCC)) is missing. Install it with:" >&2; \
	    echo "    sudo apt-get install $(TOOLCHAIN_PACKAGES)" >&2; exit 2; \
	  fi; }
	@command -v $(ARM_GCC) >/dev/null 2>&1 || { echo "make: $(ARM_GCC) still not found after installing $(TOOLCHAIN_PACKAGES)" >&2; exit 2; }
	@command -v cmake >/dev/null 2>&1 || { echo "make: cmake is missing: sudo apt-get install cmake" >&2; exit 2; }

# picotool post-processes the image (UF2, binary info); built without USB, so no libusb.
$(PICOTOOL_STAMP): $(SRC_STAMP)
	rm -rf $(PICOTOOL)
	cmake -S $(SRC)/picotool -B $(PICOTOOL)/build -DPICOTOOL_NO_LIBUSB=1 \
	  -DPICO_SDK_PATH=$(abspath $(MPY_DIR))/lib/pico-sdk \
	  -DCMAKE_INSTALL_PREFIX=$(abspath $(PICOTOOL))/install -DPICOTOOL_FLAT_INSTALL=1 >/dev/null
	$(MAKE) -s -C $(PICOTOOL)/build -j$(JOBS) install >/dev/null
	touch $@

$(MPY_CROSS): $(SRC_STAMP)
	$(MAKE) -s -C $(MPY_DIR)/mpy-cross -j$(JOBS) >/dev/null
	touch $@

# The port's own build is incremental (cmake); this rule runs only when a frozen source,
# the manifest or a tool is newer than the image. The image is copied out only when the
# build succeeded. The git ceiling keeps MicroPython's version string its own (v1.28.0)
# rather than this repository's commit, which git would find above build/src. CMAKE_ARGS
# goes in the environment: on the command line it would replace the port's own
# `CMAKE_ARGS += -DMICROPY_BOARD=...` and every board would build as the plain Pico.
$(UF2): $(FW_SOURCES) $(PICOTOOL_STAMP) $(MPY_CROSS)
	@$(MAKE) --no-print-directory -f $(firstword $(MAKEFILE_LIST)) toolchain
	rm -f $@
	mkdir -p $(FW)
	GIT_CEILING_DIRECTORIES=$(abspath $(SRC)) MICROPY_MPYCROSS=$(abspath $(MPY_CROSS)) \
	  CMAKE_ARGS="-Dpicotool_DIR=$(abspath $(PICOTOOL))/install/picotool" \
	  $(MAKE) -s -C $(MPY_DIR)/ports/rp2 BOARD=$(BOARD) BUILD=$(abspath $(FW))/port \
	  MAKE_ARGS=-j$(JOBS) FROZEN_MANIFEST=$(abspath manifest.py) >$(FW)-build.log 2>&1 \
	  || { tail -30 $(FW)-build.log >&2; echo "make: the firmware build failed; the full log is $(FW)-build.log" >&2; exit 2; }
	cp $(FW)/port/firmware.uf2 $@.tmp
	mv $@.tmp $@

# ---- the emulator's packages (rp2040js, uf2), pinned in package.json + package-lock.json ----
NODE ?= node
NPM ?= npm
node: $(NODE_STAMP)

$(NODE_STAMP): package.json package-lock.json
	@command -v $(NODE) >/dev/null 2>&1 || { echo "make: Node.js is missing: the emulated Pico runs on Node.js 18 or newer. Install it with:" >&2; echo "    sudo apt-get install nodejs npm" >&2; exit 2; }
	@$(NODE) -e 'process.exit(Number(process.versions.node.split(".")[0]) >= 18 ? 0 : 1)' || { echo "make: Node.js $$($(NODE) --version) is too old: the emulated Pico needs 18 or newer" >&2; exit 2; }
	@command -v $(NPM) >/dev/null 2>&1 || { echo "make: npm is missing: sudo apt-get install npm" >&2; exit 2; }
	$(NPM) ci --no-audit --no-fund --loglevel=error
	touch $@
