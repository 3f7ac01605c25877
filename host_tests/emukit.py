# Shared pieces of the tests on the emulated Pico (test_emu_*.py): the firmware image
# (make firmware) on an emulated RP2040 (emu/, tools/emupico.py), a pump provisioned and set
# up over its USB serial as a clinician would, and waits bounded in wall time.
import os
import time

import pytest

from tools.emupico import DEFAULT_UF2, NODE_MODULES, EmuPico
from tools.keystore import KeyStore
from tools.link import Link

UID = "e6614103e7abcdef"  # the emulated flash's unique id: the pump's device id
STROKE_NL = 250  # boards/pico/config.py
STEPS_PER_STROKE = 64
# A program that leaves a 20 mL fill far from every reservoir alarm: 0.4 mL/day
SLOW = {"drug": "baclofen", "conc_ug_per_ml": 50, "dose_ug_per_day": 20}
SERVICE_NOTICE = "service mode: pump not started"  # boards/pico/run.py, then the REPL is free
CLOCK = {"day": 8766, "ms": 8 * 3600000}  # 2024-01-01 08:00, days since 2000-01-01


def need_emulator():
    # `make test` builds both; a bare pytest run says how to get them
    if not os.path.exists(DEFAULT_UF2):
        pytest.fail("%s is missing: run `make test` (it builds the firmware first)" % DEFAULT_UF2)
    if not os.path.isdir(NODE_MODULES):
        pytest.fail("node_modules is missing: run `make test` (it runs npm ci first)")


def hello(link, timeout_s=30):
    # hello until the pump answers: after a power-up it answers once its loop runs, and a
    # request that arrives while it boots may go unanswered, as on a Pico's USB
    from tools.link import RequestTimeout
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return link.hello(1.5)
        except RequestTimeout:
            if time.monotonic() > deadline:
                raise


def wait_for(condition, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("timed out after %.0f s waiting until %s" % (timeout_s, what))
        time.sleep(0.05)


class Bench:
    # An emulated Pico on the bench: its flash file, its keys in a host key store, a link.
    def __init__(self, tmp_path, **options):
        need_emulator()
        self.tmp = tmp_path
        self.store = KeyStore(str(tmp_path / "keys"))
        options.setdefault("uid", UID)
        self.pico = EmuPico(flash=str(tmp_path / "flash.bin"), **options)
        self.link = None

    def start(self, keys=True, attach=True):
        # power up with fresh keys on the flash (through the REPL in service mode); attach:
        # hold the port from before the boot (a port is one program's at a time: a test
        # that hands it to mpremote or the console does not attach)
        p = self.pico
        p.open()
        if keys:
            p.keys = self.store.provision(p.dev)
        if attach:
            self.link = Link(p.port, keys=self.store)
        p.launch()
        if p.service:
            p.wait_output(SERVICE_NOTICE)
        return self

    def setup(self, program=SLOW, fill_nl=20000000):
        link = self.link
        hello(link)
        link.command("clock", CLOCK, timeout_s=60)
        link.command("fill", {"volume_nl": fill_nl, "conc_ug_per_ml": program["conc_ug_per_ml"]}, timeout_s=60)
        link.command("program", program, timeout_s=60)
        return self

    def world(self):
        return self.pico.status()["world"]

    def status(self):
        return self.link.status(60)

    def close(self):
        if self.link is not None:
            self.link.close()
        self.pico.stop()


@pytest.fixture
def bench(tmp_path):
    made = []

    def make(**options):
        here = tmp_path / ("pico%d" % len(made))  # each its own flash and key store
        here.mkdir()
        b = Bench(here, **options)
        made.append(b)
        return b
    yield make
    for b in made:
        b.close()


def alarm_codes(status):
    return sorted(a[0] for a in status.get("alarms") or [])
