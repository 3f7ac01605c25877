# Fault injection for the simulated Pico: faults that start and end at given virtual
# times, or a schedule drawn from a seeded generator (same seed, same faults, on either
# runtime). Board.wait() hands over to Faults.run_to() only when a start or an end falls
# inside the wait, so a run without faults pays one comparison per wait.
#
#   board.faults.add("occlusion", start_ms, end_ms)            # end_ms None: never ends
#   board.faults.add("missed_pulses", 0, 3600000, percent=20)
#   board.faults.random(rng, days=30, count=5)
#   parse_spec("partial_occlusion:2:26:half_life_s=300")      # the CLI's --fault syntax
#
# docs/simulator.md lists the kinds and what each does to the board.
from boards.sim import WatchdogReset, fluid

NEVER_MS = 1 << 60
HOUR_MS = 3600000
RANDOM_DAYS = 30  # a random schedule for an unbounded run falls within its first 30 days

# kind -> its parameters with their defaults (docs/simulator.md says what they mean)
KINDS = {
    "occlusion": {},
    "partial_occlusion": {"half_life_s": fluid.PARTIAL_HALF_LIFE_MS // 1000},
    "stall": {},
    "missed_pulses": {"percent": 50},
    "sensor_stuck": {"raw": -1},  # -1: the reading at the moment it sticks
    "sensor_noisy": {"lsb": 200},  # +-200 ADC codes: about +-240 mbar
    "sensor_disconnected": {"rail": "low"},
    "battery_discharge": {"start_mv": 4200, "mv_per_h": 100, "floor_mv": 3000},
    "watchdog_reset": {},
}
# Kinds in a fixed order (a dict's order differs between the runtimes).
KIND_NAMES = ("occlusion", "partial_occlusion", "stall", "missed_pulses", "sensor_stuck", "sensor_noisy",
              "sensor_disconnected", "battery_discharge", "watchdog_reset")
# Durations of random faults, minutes (assumptions: an occlusion that comes and goes
# within hours, a partial one that lasts days, a stall freed by the next strokes' torque
# or not for hours, a battery run for up to half a day before USB returns).
RANDOM_MINUTES = {
    "occlusion": (10, 360),
    "partial_occlusion": (60, 2880),
    "stall": (1, 120),
    "missed_pulses": (60, 1440),
    "sensor_stuck": (10, 1440),
    "sensor_noisy": (10, 1440),
    "sensor_disconnected": (10, 1440),
    "battery_discharge": (60, 720),
    "watchdog_reset": (0, 0),
}

PENDING = 0
ACTIVE = 1
OVER = 2


class Fault:
    def __init__(self, kind, start_ms, end_ms, params):
        self.kind = kind
        self.start_ms = start_ms
        self.end_ms = end_ms  # -1: never ends
        self.params = params
        self.state = PENDING
        self.on_ms = -1  # when it became active
        self.stuck_raw = -1  # sensor_stuck: the value it holds
        self.released_nl = -1  # occlusions: volume stored in the line when it ended

    def spec(self):
        # the --fault form, which parse_spec() turns back into the same fault
        parts = [self.kind, format_time(self.start_ms)]
        if self.end_ms >= 0:
            parts.append(format_time(self.end_ms))
        defaults = KINDS[self.kind]
        for name in sorted(self.params):
            if self.params[name] != defaults[name]:
                parts.append("%s=%s" % (name, self.params[name]))
        return ":".join(parts)


def make(kind, start_ms, end_ms=None, params=None):
    # A checked Fault; ValueError says what is wrong.
    if kind not in KINDS:
        raise ValueError("fault kind %r: one of %s" % (kind, ", ".join(KIND_NAMES)))
    defaults = KINDS[kind]
    full = {}
    for name in defaults:
        full[name] = defaults[name]
    for name in params or {}:
        if name not in defaults:
            raise ValueError("fault %s: no parameter %r (it takes: %s)" % (
                kind, name, ", ".join(sorted(defaults)) or "none"))
        full[name] = params[name]
    if start_ms < 0:
        raise ValueError("fault %s: start before 0" % kind)
    if end_ms is None or kind == "watchdog_reset":
        end_ms = -1
    elif end_ms <= start_ms:
        raise ValueError("fault %s: it must end after it starts" % kind)
    _check_params(kind, full)
    return Fault(kind, start_ms, end_ms, full)


def _check_params(kind, p):
    def need(name, lo, hi):
        v = p[name]
        if type(v) is not int or not lo <= v <= hi:
            raise ValueError("fault %s: %s=%r, expected a whole number in %d..%d" % (kind, name, v, lo, hi))
    if kind == "partial_occlusion":
        need("half_life_s", 1, 86400)
    elif kind == "missed_pulses":
        need("percent", 0, 100)
    elif kind == "sensor_stuck":
        need("raw", -1, 65535)
    elif kind == "sensor_noisy":
        need("lsb", 0, 4095)
    elif kind == "sensor_disconnected":
        if p["rail"] not in ("low", "high"):
            raise ValueError("fault %s: rail=%r, expected low or high" % (kind, p["rail"]))
    elif kind == "battery_discharge":
        need("start_mv", 0, 9900)
        need("mv_per_h", 0, 100000)
        need("floor_mv", 0, 9900)


class Faults:
    def __init__(self, board):
        self.board = board
        self.all = []  # every Fault added, in order
        self.biting = False  # a watchdog reset is due: the next wait raises
        board.edge_ms = NEVER_MS  # the next start or end; Board.wait compares with it

    # -- building the schedule
    def add(self, kind, start_ms, end_ms=None, **params):
        # A fault from start_ms (virtual ms, as board.clock.ms) until end_ms (None: for
        # the rest of the run). One that starts at or before now starts now.
        return self.add_fault(make(kind, start_ms, end_ms, params))

    def add_fault(self, f):
        # a Fault made by make() or draw()
        self.all.append(f)
        now = self.board.clock.ms
        if f.start_ms <= now:
            self._edge(now)
        else:
            self._plan()
        return f

    def add_spec(self, spec):
        kind, start_ms, end_ms, params = parse_spec(spec)
        return self.add(kind, start_ms, end_ms, **params)

    def random(self, rng, days, count, kinds=KIND_NAMES):
        # adds draw(rng, days, count, kinds) and returns those faults
        return [self.add_fault(f) for f in draw(rng, days, count, kinds)]

    # -- asking
    def active(self, kind):
        for f in self.all:
            if f.state == ACTIVE and f.kind == kind:
                return True
        return False

    def active_kinds(self):
        return sorted(set(f.kind for f in self.all if f.state == ACTIVE))

    # -- running (Board.wait)
    def run_to(self, target_ms):
        # Applies every start and end up to target_ms in time order, moving the head's
        # strokes to each: a stroke that completes before a fault starts is not in it.
        b = self.board
        while True:
            if self.biting:
                self.biting = False
                self._plan()
                raise WatchdogReset("watchdog reset at virtual ms %d" % b.clock.ms)
            t = b.edge_ms
            if t > target_ms:
                return
            if t > b.clock.ms:
                b.clock.ms = t
                b.head.advance(t - 1)
            self._edge(t)

    def _edge(self, t):
        b = self.board
        for f in self.all:
            if f.state == PENDING and f.start_ms <= t:
                f.state = ACTIVE
                f.on_ms = t
                self._starts(f)
            if f.state == ACTIVE and 0 <= f.end_ms <= t:
                f.state = OVER
                if f.kind in ("occlusion", "partial_occlusion"):
                    f.released_nl = b.head.line.stored_at(t)
        self._apply(t)
        self._plan()

    def _starts(self, f):
        b = self.board
        if f.kind == "sensor_stuck":
            raw = f.params["raw"]
            f.stuck_raw = raw if raw >= 0 else b.pressure.read_raw()
        elif f.kind == "watchdog_reset":
            f.state = OVER  # an instant, not a spell
            b.watchdog.reset = True
            b.reboot()
            self.biting = True

    def _apply(self, t):
        # the combined effect of every active fault on the board's parts
        b = self.board
        blocked = False
        half_life_ms = 0
        stalled = False
        miss = 0
        mode = fluid.OK
        stuck_raw = 0
        noise = fluid.NOISE_LSB
        battery = None
        for f in self.all:
            if f.state != ACTIVE:
                continue
            k = f.kind
            p = f.params
            if k == "occlusion":
                blocked = True
            elif k == "partial_occlusion":
                half_life_ms = max(half_life_ms, p["half_life_s"] * 1000)
            elif k == "stall":
                stalled = True
            elif k == "missed_pulses":
                miss = max(miss, p["percent"] * 10000)
            elif k == "sensor_noisy":
                noise = max(noise, p["lsb"])
            elif k == "sensor_stuck":
                if mode == fluid.OK:
                    mode = fluid.STUCK
                    stuck_raw = f.stuck_raw
            elif k == "sensor_disconnected":
                mode = fluid.RAIL_HIGH if p["rail"] == "high" else fluid.RAIL_LOW
            elif k == "battery_discharge":
                battery = f
        if blocked:
            half_life_ms = 0
        elif not half_life_ms:
            half_life_ms = fluid.OPEN_HALF_LIFE_MS
        if b.head.line.half_life_ms != half_life_ms:
            b.head.line.set_half_life(t, half_life_ms)
        b.head.set_faults(stalled, miss)
        s = b.pressure
        s.mode = mode
        s.stuck_raw = stuck_raw
        s.noise_lsb = noise
        s.changed()
        if battery is None:
            b.battery.on_usb()
        else:
            p = battery.params
            b.battery.discharge(battery.on_ms, p["start_mv"], p["mv_per_h"], p["floor_mv"])

    def _plan(self):
        t = NEVER_MS
        for f in self.all:
            if f.state == PENDING and f.start_ms < t:
                t = f.start_ms
            elif f.state == ACTIVE and 0 <= f.end_ms < t:
                t = f.end_ms
        if self.biting and self.board.clock.ms < t:
            t = self.board.clock.ms
        self.board.edge_ms = t


def draw(rng, days, count, kinds=KIND_NAMES):
    # `count` faults, each starting at a whole minute within `days` days of virtual time
    # 0, kinds, durations and parameters drawn from rng, in that order.
    made = []
    for _ in range(count):
        kind = kinds[rng.below(len(kinds))]
        start_ms = rng.below(days * 1440) * 60000
        lo, hi = RANDOM_MINUTES[kind]
        end_ms = start_ms + (lo + rng.below(hi - lo + 1)) * 60000 if hi else None
        made.append(make(kind, start_ms, end_ms, _random_params(rng, kind)))
    return made


def random_schedule(seed, days, count):
    # what --seed SEED --days DAYS --random-faults COUNT injects (boards/sim/run.py)
    return draw(fluid.stream(seed, fluid.STREAM_FAULTS), days or RANDOM_DAYS, count)


def _random_params(rng, kind):
    if kind == "partial_occlusion":
        return {"half_life_s": 60 + rng.below(541)}
    if kind == "missed_pulses":
        return {"percent": 5 + rng.below(46)}
    if kind == "sensor_noisy":
        return {"lsb": 50 + rng.below(351)}
    if kind == "sensor_disconnected":
        return {"rail": "high" if rng.below(2) else "low"}
    if kind == "battery_discharge":
        return {"mv_per_h": 50 + rng.below(151)}
    return {}


# -- the CLI's form: KIND:START[:END][:NAME=VALUE...]; times are hours unless they end in
# ms, s, m, h or d ("1.5" = "90m" = 5400000 ms).
_UNITS_MS = (("ms", 1), ("s", 1000), ("m", 60000), ("h", HOUR_MS), ("d", 24 * HOUR_MS))


def parse_time(text):
    # "1.5" -> 5400000; integers only, so both runtimes agree to the ms
    unit_ms = HOUR_MS
    for suffix, ms in _UNITS_MS:
        if text.endswith(suffix) and text[:-len(suffix)][-1:].isdigit():
            unit_ms = ms
            text = text[:-len(suffix)]
            break
    whole, dot, frac = text.partition(".")
    if not (whole or frac) or not (whole + frac).isdigit():
        raise ValueError("time %r: expected hours like 2 or 1.5, or 90m, 30s, 2d, 500ms" % text)
    ms = int(whole or "0") * unit_ms
    if frac:
        ms += int(frac) * unit_ms // 10 ** len(frac)
    return ms


def format_time(ms):
    for suffix, unit_ms in (("d", 24 * HOUR_MS), ("h", HOUR_MS), ("m", 60000), ("s", 1000)):
        if ms % unit_ms == 0:
            return "%d%s" % (ms // unit_ms, suffix)
    return "%dms" % ms


def parse_spec(spec):
    # "occlusion:2:3" -> ("occlusion", 7200000, 10800000, {}); ValueError says why not
    parts = spec.split(":")
    if len(parts) < 2 or not parts[0]:
        raise ValueError("fault %r: expected KIND:START[:END][:NAME=VALUE...], e.g. occlusion:2:3" % spec)
    kind = parts[0]
    start_ms = parse_time(parts[1])
    end_ms = None
    params = {}
    for i in range(2, len(parts)):
        part = parts[i]
        name, eq, value = part.partition("=")
        if not eq:
            if i != 2:
                raise ValueError("fault %r: the end time comes right after the start" % spec)
            end_ms = parse_time(part)
            continue
        v = value[1:] if value.startswith("-") else value
        params[name] = int(value) if v.isdigit() else value
    make(kind, start_ms, end_ms, params)  # checks it all
    return kind, start_ms, end_ms, params
