# A bench for the core alone: drives a Pump through time as the shell would, with a motor
# that turns (or not) and a rotor sensor that pulses (or not). No board involved.
from pump import ticks, wire
from pump.core import Pump, PumpConfig

KEEP = 100

BACLOFEN_500 = {"drug": "baclofen", "conc_ug_per_ml": 500, "dose_ug_per_day": 200}
START_TICKS = (1 << 30) - 10000  # wraps ten seconds in


def make_pump(stroke_nl=250, stroke_ms=160, capacity_nl=40000000, max_nl_per_day=30000000,
              status_period_ms=3600000):
    return Pump(PumpConfig(stroke_nl, stroke_ms, capacity_nl, max_nl_per_day,
                           status_period_ms=status_period_ms))


class Bench:
    def __init__(self, pump, start_ticks=START_TICKS):
        self.pump = pump
        self.board_now = start_ticks  # board ticks, wrapping at 2**30
        self.elapsed_ms = 0
        self.motor_turns = True  # False: a stall (no strokes, no pulses)
        self.sensor_pulses = True  # False: strokes happen but the rotor sensor is silent
        self.in_motor = 0  # strokes commanded, not yet turned
        self.turned = 0  # strokes the motor really made
        self.reader = wire.Reader()
        self.counts = {}  # "status", "event:power_up", ... -> frames seen
        self.kept = []  # bodies of the first KEEP non-status frames
        self.last_status = None
        self.log_records = 0
        self.states = []  # the last few snapshots the core asked to persist

    def boot(self, stored=None):
        self.pump.power_up(self.board_now, stored)
        self._collect()

    def _collect(self):
        # Keeps what tests look at, not every frame: a day of frames outgrows a Pico heap.
        p = self.pump
        self.in_motor += p.take_strokes()
        for frame in p.take_output():
            for f in self.reader.feed(frame):
                body = f.body
                key = body["t"] if body["t"] != "event" else "event:" + body["ev"]
                self.counts[key] = self.counts.get(key, 0) + 1
                if key == "status":
                    self.last_status = body
                elif len(self.kept) < KEEP:
                    self.kept.append(body)
        self.log_records += len(p.take_log())
        s = p.take_state()
        if s is not None:
            self.states.append(s)
            if len(self.states) > 3:
                self.states.pop(0)

    def advance(self, ms):
        # Move time by `ms`, waking at every core deadline on the way, like the shell.
        end = self.elapsed_ms + ms
        while True:
            p = self.pump
            wait = p.tick(self.board_now)
            self._collect()
            if self.in_motor:
                # the motor turns the commanded strokes right away
                n = self.in_motor
                self.in_motor = 0
                if self.motor_turns:
                    self.turned += n
                    if self.sensor_pulses:
                        p.rotor(self.board_now, n)
                        self._collect()
                        wait = p.tick(self.board_now)
                        self._collect()
            if self.elapsed_ms >= end:
                return
            hop = wait if 0 < wait < end - self.elapsed_ms else end - self.elapsed_ms
            if hop <= 0:
                hop = 1 if end > self.elapsed_ms else 0
            self.elapsed_ms += hop
            self.board_now = (self.board_now + hop) & ((1 << 30) - 1)

    def bodies(self, t=None, ev=None):
        # kept bodies of type t (and event name ev)
        return [b for b in self.kept
                if (t is None or b.get("t") == t) and (ev is None or b.get("ev") == ev)]

    def count(self, key):
        return self.counts.get(key, 0)


def signed(board_ticks):
    return ticks.from_board(board_ticks)
