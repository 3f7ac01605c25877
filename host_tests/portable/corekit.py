# A bench for the core alone: drives a Pump through time as the shell would, with a motor
# that turns (or not) and a rotor sensor that pulses (or not). No board involved.
from pump import ticks, wire
from pump.core import Pump, PumpConfig

KEEP = 100
MBAR_PER_STROKE = 200  # a 250 nL stroke into a blocked line (docs/simulator.md)

BACLOFEN_500 = {"drug": "baclofen", "conc_ug_per_ml": 500, "dose_ug_per_day": 200}
START_TICKS = (1 << 30) - 10000  # wraps ten seconds in


def make_pump(stroke_nl=250, stroke_ms=160, capacity_nl=40000000, max_nl_per_day=30000000,
              status_period_ms=3600000):
    return Pump(PumpConfig(stroke_nl, stroke_ms, capacity_nl, max_nl_per_day,
                           status_period_ms=status_period_ms))


class Bench:
    def __init__(self, pump, start_ticks=START_TICKS, keep=KEEP):
        self.pump = pump
        self.keep = keep  # how many non-status bodies to keep (the heap is small)
        self.start_ticks = start_ticks
        self.board_now = start_ticks  # board ticks, wrapping at 2**30
        self.elapsed_ms = 0
        self.motor_turns = True  # False: a stall (no strokes, no pulses)
        self.sensor_pulses = True  # False: strokes happen but the rotor sensor is silent
        # the board readings, as the core asks for them (pump.wants)
        self.baseline_mbar = 12  # CSF pressure at the catheter tip
        self.occluded = False  # a blocked line: each stroke adds MBAR_PER_STROKE, kept
        self.line_mbar = 0  # pressure stored in the blocked line
        self.pressure_raw = None  # a fixed raw reading instead (a sensor fault)
        self.battery_mv = 4800
        self.noise = 0  # a count of noise that alternates, as a live ADC shows
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
                elif len(self.kept) < self.keep:
                    self.kept.append(body)
        self.log_records += len(p.take_log())
        s = p.take_state()
        if s is not None:
            self.states.append(bytes(s))  # (the core's buffer is written again next time)
            if len(self.states) > 3:
                self.states.pop(0)

    def feed(self):
        # the readings the core asked for, as the shell takes them from the board
        p = self.pump
        if p.wants & 1:  # WANT_PRESSURE
            raw = self.pressure_raw
            if raw is None:
                self.noise = 1 - self.noise
                mbar = self.baseline_mbar + self.line_mbar
                raw = p.cfg.pressure_zero_raw + mbar * p.cfg.pressure_raw_per_bar // 1000 + self.noise
            p.pressure(self.board_now, raw)
        if p.wants & 2:  # WANT_BATTERY
            p.battery(self.board_now, self.battery_mv)
        self._collect()

    def tick_once(self):
        # one pass at board_now: tick, then the motor turns what was commanded and the
        # rotor confirms it (no stall, no missed pulse)
        p = self.pump
        p.tick(self.board_now)
        self._collect()
        if self.in_motor:
            n = self.in_motor
            self.in_motor = 0
            p.rotor(self.board_now, n)
            self._collect()

    def advance(self, ms):
        # Move time by `ms`, waking at every core deadline on the way, like the shell.
        end = self.elapsed_ms + ms
        while True:
            p = self.pump
            self.feed()
            wait = p.tick(self.board_now)
            self._collect()
            if self.in_motor:
                # the motor turns the commanded strokes right away
                n = self.in_motor
                self.in_motor = 0
                if self.motor_turns:
                    self.turned += n
                    if self.occluded:
                        self.line_mbar += n * MBAR_PER_STROKE
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


MIN_MS = 60000


def rate_at(profiles, week, day, ms):
    # A reference step lookup, written apart from pump.schedule: a step runs until the
    # next; before a day's first step the previous day's last step runs. Days count
    # from 2000-01-01, a Saturday; week[0] is Monday.
    steps = profiles[week[(day + 5) % 7]]
    rate = None
    for start_min, r in steps:
        if start_min * MIN_MS <= ms:
            rate = r
    if rate is None:
        rate = profiles[week[(day + 4) % 7]][-1][1]
    return rate


class Reference:
    # The programmed drug, integrated exactly (ng*ms/day) from the program's wire form,
    # the wall clock and the pause: what the pump must deliver, worked out independently.
    def __init__(self, program, day, ms):
        self.program = program
        self.day = day
        self.ms = ms
        self.paused = False
        self.integral = 0

    def rate(self):
        p = self.program
        if self.paused:
            return p["keep_open_nl_per_day"] * p["conc_ug_per_ml"] // 1000
        return rate_at(p["profiles"], p["week"], self.day, self.ms)

    def run(self, ms):
        # integrate, splitting at step boundaries of the wall clock
        while ms > 0:
            nxt = 86400000 - self.ms
            for start_min, _ in self.program["profiles"][self.program["week"][(self.day + 5) % 7]]:
                if start_min * MIN_MS > self.ms:
                    nxt = start_min * MIN_MS - self.ms
                    break
            span = nxt if nxt < ms else ms
            self.integral += self.rate() * span
            ms -= span
            self.ms += span
            if self.ms >= 86400000:
                self.ms -= 86400000
                self.day += 1
