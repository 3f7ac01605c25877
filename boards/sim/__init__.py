# The simulated Pico: a virtual clock that wraps like the RP2040's, the peristaltic head,
# the downstream line and its pressure sensor, the supply, fault injection, a host
# directory as flash, and the link on stdin/stdout (a pseudo-terminal when started by
# tools/simpico.py). Runs on the MicroPython unix port and on CPython. docs/simulator.md
# describes the physics and the faults.
import json
import time

from boards.fsstorage import FsStorage
from boards.sim import config as default_config
from boards.sim.battery import Battery
from boards.sim.fluid import STREAM_PULSES, Csf, Line, LineView, PressureSensor, stream
from boards.sim.head import Head
from boards.sim.rng import Rng

_MASK = (1 << 30) - 1
_POLL_EVERY = 64  # at full speed, look at the link every this many waits


class WatchdogReset(Exception):
    # Raised out of Board.wait() when a watchdog_reset fault bites: the firmware's run
    # ends there, as the RP2040's does; boards/sim/run.py boots it again.
    pass


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
    # Records what the firmware shows (tests and the console read it).
    def __init__(self):
        self.led = 0
        self.tone = 0
        self.tone_every = 1
        self.changes = 0

    def set(self, led, tone, tone_every=1):
        if (led, tone, tone_every) != (self.led, self.tone, self.tone_every):
            self.changes += 1
        self.led = led
        self.tone = tone
        self.tone_every = tone_every

    def tick(self, now_ms):
        pass


class Hands:
    # The link as the board sees it, with a clinician's hands behind it: when the
    # firmware reports a fill or a refill (its `fill` event), the drug is in the
    # reservoir, as it would be after a real refill, where the clinician fills first and
    # tells the pump after. Reading and waiting go to the link itself, untouched.
    def __init__(self, link, head):
        self.link = link
        self.head = head
        self.read = link.read
        self.wait = link.wait

    def write(self, data):
        if b'"ev":"fill"' in data:
            body = json.loads(data[data.index(b" ", 3) + 1:data.rindex(b" ")])
            self.head.reservoir_nl = body["volume_nl"]
        self.link.write(data)


class _FaultsLoader:
    # board.faults until first used: then boards/sim/faults.py is loaded and takes its
    # place, so a run without faults spares its RAM (the unix port's heap stands in for a
    # Pico's). Not a property: on MicroPython one would slow every store to a Board.
    def __init__(self, board):
        self._board = board

    def __getattr__(self, name):
        b = self._board
        if b.faults is self:
            from boards.sim.faults import Faults
            b.faults = Faults(b)
        return getattr(b.faults, name)


class Board:
    name = "sim"

    def __init__(self, storage_dir, link, speed=0, seed=1, config=default_config):
        self.config = config
        self.device_id = "sim-%d" % seed  # what the command keys are bound to ...
        self.clock = Clock(config.START_TICKS)
        line = Line()
        self.line = LineView(line, self.clock)  # the truth, as of now
        self.csf = Csf(seed)
        self.head = Head(config, self.clock, line, stream(seed, STREAM_PULSES))
        self.stepper = self.head
        self.rotor = self.head
        self.pressure = PressureSensor(config, self.clock, line, self.csf, seed)
        self.battery = Battery(self.clock, seed)
        self.storage = FsStorage(storage_dir)
        # ... unless the flash names its own: each simulated Pico made by tools.simpico
        # gets a unique id (as every RP2040 has), kept beside the flash files
        named = self.storage.read(self.DEVICE_ID_FILE)
        if named:
            self.device_id = named.decode().strip()
        self.link = Hands(link, self.head)
        self.watchdog = Watchdog()
        self.annunciator = Annunciator()
        self.rng = Rng(seed)
        self.edge_ms = 1 << 60  # the next fault start or end (kept by Faults)
        self.faults = _FaultsLoader(self)
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
        # head's physics runs up to it, through any fault that starts or ends on the way,
        # and the line is as of then whenever anything looks at it (boards/sim/fluid.py).
        # Rotor pulses are counted meanwhile, as the Pico's IRQ counts them while its
        # loop sleeps.
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
        if target >= self.edge_ms:
            self.faults.run_to(target)  # may raise WatchdogReset
        if target > clock.ms:
            clock.ms = target
        self.head.advance(clock.ms)

    # The physical world outlives a reboot: the drug in the reservoir does not vanish
    # when the firmware restarts. Kept beside the flash files, invisible to the firmware.
    PHYSICS_FILE = ".sim-physics"
    DEVICE_ID_FILE = ".sim-device-id"

    def save_physics(self):
        h = self.head
        line = self.line
        self.storage.write(self.PHYSICS_FILE, b"%d %d %d %d %d %d\n" % (
            h.reservoir_nl, h.pumped_nl, h.strokes_made, line.stored_nl, line.pumped_nl, line.backflow_nl))

    def load_physics(self):
        data = self.storage.read(self.PHYSICS_FILE)
        if not data:
            return False
        fields = [int(x) for x in data.split()]
        h = self.head
        h.reservoir_nl, h.pumped_nl, h.strokes_made = fields[:3]
        if len(fields) >= 6:  # files from before the line was modelled have three
            self.head.line.restore(fields[3], fields[4], fields[5], self.clock.ms)
        return True

    def reboot(self):
        # What a reset of the RP2040 does to the board: the step generator stops and the
        # driver is released, RAM (the pulse count) is lost, the buzzer and LED go off
        # and ticks_ms() starts again (here, as at every sim boot, just before a wrap).
        # The physical world (reservoir, line) carries on.
        self.head.reset()
        self.annunciator.set(0, 0)
        self.clock.start_ticks = (self.config.START_TICKS - self.clock.ms) & _MASK

    def set_speed(self, speed):
        self.speed = speed
        self._real0 = host_ms()
        self._virt0 = self.clock.ms
