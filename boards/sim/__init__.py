# The simulated Pico: a virtual clock that wraps like the RP2040's, the peristaltic head
# model, a host directory as flash, and the link on stdin/stdout (a pseudo-terminal when
# started by tools/simpico.py). Runs on the MicroPython unix port and on CPython.
import time

from boards.fsstorage import FsStorage
from boards.sim import config as default_config
from boards.sim.head import Head
from boards.sim.rng import Rng

_MASK = (1 << 30) - 1
_POLL_EVERY = 64  # at full speed, look at the link every this many waits


def host_ms():
    # real milliseconds for pacing, on either runtime
    try:
        return time.ticks_ms()
    except AttributeError:
        return int(time.monotonic() * 1000)


def host_ms_since(t0):
    try:
        return time.ticks_diff(time.ticks_ms(), t0)
    except AttributeError:
        return int(time.monotonic() * 1000) - t0


class Clock:
    # Virtual time. `ms` never wraps; the board's ticks_ms() wraps at 2**30.
    def __init__(self, start_ticks):
        self.ms = 0
        self.start_ticks = start_ticks

    def ticks_ms(self):
        return (self.start_ticks + self.ms) & _MASK


class Sensors:
    # Pressure and battery: steady for now (the alarm work adds their physics).
    def __init__(self, config):
        self.pressure_raw = config.PRESSURE_ZERO_RAW
        self.battery_mv = 4800  # VSYS from USB is about 5 V less the Pico's Schottky diode

    def read_raw(self):
        return self.pressure_raw

    def read_mv(self):
        return self.battery_mv


class Watchdog:
    def __init__(self):
        self.timeout_ms = 0
        self.feeds = 0
        self.reset = False

    def start(self, timeout_ms):
        self.timeout_ms = timeout_ms

    def feed(self):
        self.feeds += 1

    def caused_reset(self):
        return self.reset


class Annunciator:
    def __init__(self):
        self.led = 0
        self.tone = 0

    def set(self, led, tone):
        self.led = led
        self.tone = tone

    def tick(self, now_ms):
        pass


class Board:
    name = "sim"

    def __init__(self, storage_dir, link, speed=0, seed=1, config=default_config):
        self.config = config
        self.clock = Clock(config.START_TICKS)
        self.head = Head(config, self.clock)
        self.stepper = self.head
        self.rotor = self.head
        sensors = Sensors(config)
        self.pressure = sensors
        self.battery = sensors
        self.storage = FsStorage(storage_dir)
        self.link = link
        self.watchdog = Watchdog()
        self.annunciator = Annunciator()
        self.rng = Rng(seed)
        self.speed = speed  # 0: as fast as possible; N: N x real time
        self._waits = 0
        self._real0 = host_ms()
        self._virt0 = 0

    def ticks_ms(self):
        return self.clock.ticks_ms()

    def days(self):
        return self.clock.ms // 86400000

    def wait(self, timeout_ms):
        # Virtual time moves to the deadline (or to now, if link input is waiting); the
        # head's physics runs up to it. Rotor pulses are counted meanwhile, as the Pico's
        # IRQ counts them while its loop sleeps.
        clock = self.clock
        target = clock.ms + timeout_ms
        if self.speed:
            # keep virtual time locked to real time x speed, without drift
            real_due = (target - self._virt0) // self.speed
            left = real_due - host_ms_since(self._real0)
            if left > 0 and self.link.wait(left):
                now = self._virt0 + host_ms_since(self._real0) * self.speed
                if now < target:
                    target = now
        else:
            self._waits += 1
            if self._waits % _POLL_EVERY == 0 and self.link.wait(0):
                target = clock.ms  # input waiting: hand it over before moving on
        if target > clock.ms:
            clock.ms = target
        self.head.advance(clock.ms)

    # The physical world outlives a reboot: the drug in the reservoir does not vanish
    # when the firmware restarts. Kept beside the flash files, invisible to the firmware.
    PHYSICS_FILE = ".sim-physics"

    def save_physics(self):
        h = self.head
        self.storage.write(self.PHYSICS_FILE, b"%d %d %d\n" % (h.reservoir_nl, h.pumped_nl, h.strokes_made))

    def load_physics(self):
        data = self.storage.read(self.PHYSICS_FILE)
        if not data:
            return False
        reservoir_nl, pumped_nl, strokes = [int(x) for x in data.split()]
        h = self.head
        h.reservoir_nl = reservoir_nl
        h.pumped_nl = pumped_nl
        h.strokes_made = strokes
        return True

    def set_speed(self, speed):
        self.speed = speed
        self._real0 = host_ms()
        self._virt0 = self.clock.ms
