# The real Pico board (RP2040): the HAL of docs/hal.md on the Pico's pins, PIO, ADC,
# watchdog, LittleFS and USB serial. Pin map and calibration live in config.py.
#
# Everything the board touches comes in through `machine`, `rp2` and the clock (the `time`
# module on the device), so host tests run this same code against fakes with a virtual
# clock: Board(config, link, storage, clock).
import os
import time

from boards.fsstorage import FsStorage
from boards.pico import config as default_config
from boards.pico.annunciator import Annunciator
from boards.pico.rotor import Rotor
from boards.pico.sensors import Battery, Pressure
from boards.pico.watchdog import Watchdog


def _make_stepper(config):
    if config.DRIVER == "stepdir":
        from boards.pico.stepdir import StepDir
        return StepDir(config)
    if config.DRIVER == "uln2003":
        from boards.pico.uln2003 import HalfStep
        return HalfStep(config)
    raise ValueError("config.DRIVER must be 'stepdir' or 'uln2003', not %r" % (config.DRIVER,))


def _ensure_dir(path):
    try:
        os.mkdir(path)
    except OSError:
        pass  # it exists (LittleFS raises EEXIST)


class Board:
    name = "pico"

    def __init__(self, config=default_config, link=None, storage=None, clock=time):
        self.config = config
        self.clock = clock
        self.ticks_ms = clock.ticks_ms  # time.ticks_ms wraps at 2**30 on the RP2040
        self._ticks_diff = clock.ticks_diff
        self._wait_max_ms = config.WAIT_MAX_MS
        self.watchdog = Watchdog(config)  # first: it reads the reset cause
        self.stepper = _make_stepper(config)
        self.rotor = Rotor(config, clock)
        self.pressure = Pressure(config)
        self.battery = Battery(config)
        self.annunciator = Annunciator(config)
        if storage is None:
            _ensure_dir(config.STORAGE_DIR)
            storage = FsStorage(config.STORAGE_DIR)
        self.storage = storage
        # the device id the command keys are bound to (docs/security.md): the RP2040's
        # unique flash id, as hex
        import binascii
        import machine
        self.device_id = binascii.hexlify(machine.unique_id()).decode()
        if link is None:
            from boards.stdiolink import StdioLink
            link = StdioLink()
        self.link = link
        self._link_wait = link.wait

    def wait(self, timeout_ms):
        # Sleep up to timeout_ms (never more than WAIT_MAX_MS, so the loop feeds the
        # watchdog); link input ends the wait at once. Rotor pulses are counted by their
        # IRQ meanwhile (the core asks for a pass when it wants them). The sleep is cut only
        # where the annunciator's pattern changes an output (its 125 ms slots): a quiet
        # pump sleeps the whole wait in one WFE, which costs the CPU (and an emulator's
        # clock) nothing, instead of waking every few ms to look at an idle LED.
        # Kept to a few locals: a MicroPython frame over 11 words is heap-allocated.
        if timeout_ms > self._wait_max_ms:
            timeout_ms = self._wait_max_ms
        t0 = now = self.ticks_ms()
        left = timeout_ms
        while True:
            self.annunciator.tick(now)
            step = self.annunciator.wake_in_ms(now)
            if step < 0 or step > left:
                step = left
            if self._link_wait(step):
                return
            now = self.ticks_ms()
            left = timeout_ms - self._ticks_diff(now, t0)
            if left <= 0:
                self.annunciator.tick(now)
                return
