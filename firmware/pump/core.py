# The pump's core: events in (time, rotor pulses, link bytes), actions out (strokes,
# frames, records to persist). Every therapy decision is made here, deterministically.
#
# Rules this file keeps:
# 1. No I/O and no clock. Every entry point takes `now`, the board's tick (ms, wraps at
#    2**30); the shell carries out what the core asks through take_*().
# 2. Every integer it keeps stays within +-2**29 (RP2040 small ints), whatever the
#    program; host_tests/test_ranges.py walks the state to prove it.
from pump import ticks, wire
from pump.program import ProgramError, validate
from pump.reservoir import Reservoir
from pump.strokes import StrokeClock

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

DAY_MS = const(86400000)
_HALF = const(536870912)  # 2**29: see pump.ticks; inlined in the per-stroke paths
_PERIOD = const(1073741824)  # 2**30, only ever added to a negative or subtracted from a positive
HOUSEKEEPING_MS = const(3600000)  # the longest the core sleeps; also the snapshot period
STATE_FILE = "state"
LOG_FILE = "log"

# pump states
IDLE = "idle"  # no program or nothing in the reservoir: no strokes
RUNNING = "running"
STOPPED = "stopped"  # delivery stopped for a reason in self.stop_reason


class PumpConfig:
    # Calibration and policy the shell derives from the board config. The ranges keep
    # every product the core forms (stroke x concentration, rates) below 2**28.
    RANGES = (
        ("stroke_nl", 10, 20000),
        ("stroke_ms", 1, 60000),
        ("reservoir_capacity_nl", 1000000, 100000000),
        ("max_nl_per_day", 100000, 100000000),
        ("status_period_ms", 100, 86400000),
        ("lease_nl", 0, 1000000),
    )

    def __init__(self, stroke_nl, stroke_ms, reservoir_capacity_nl, max_nl_per_day,
                 status_period_ms=10000, lease_nl=50000):
        self.stroke_nl = stroke_nl
        self.stroke_ms = stroke_ms  # how long one stroke takes the motor
        self.reservoir_capacity_nl = reservoir_capacity_nl
        self.max_nl_per_day = max_nl_per_day
        self.status_period_ms = status_period_ms
        # Reservoir lease: each stored snapshot already debits this much, so a power
        # cut can only under-state what is left (by at most this much), never over-state.
        self.lease_nl = lease_nl
        for name, lo, hi in self.RANGES:
            value = getattr(self, name)
            if type(value) is not int or not lo <= value <= hi:
                raise ValueError("%s=%r: outside the allowed range %d..%d" % (name, value, lo, hi))


class Pump:
    def __init__(self, cfg):
        self.cfg = cfg
        self.state = IDLE
        self.stop_reason = None
        self.program = None
        self.reservoir = Reservoir(cfg.stroke_nl)
        self.basal = StrokeClock()
        self.now = 0  # signed ticks of the last event
        self.up_day = 0
        self.up_ms = 0
        self.boots = 0
        # motor: commanded strokes not yet confirmed by a rotor pulse
        self.in_flight = 0
        self.confirm_by = 0
        self.strokes_confirmed = 0
        self.strokes_unconfirmed = 0
        self.pulses_spurious = 0
        self.lease_left_nl = 0
        # telemetry
        self.tx_seq = 0
        self.status_at = 0
        self.housekeeping_at = 0
        self.reader = wire.Reader()
        self._strokes_out = 0
        self._out = []
        self._log = []
        self._state_dirty = False
        self._next = 0  # signed ticks of the soonest timer
        self.actions = 0  # > 0 when take_*() has something for the shell

    # ---- events in -------------------------------------------------------------------

    def power_up(self, now, stored=None, watchdog_reset=False):
        # stored: the bytes of the last snapshot (or None on first boot)
        self.now = ticks.from_board(now)
        self.status_at = self.now
        self.housekeeping_at = ticks.add(self.now, HOUSEKEEPING_MS)
        restored = self._restore(stored)
        self.boots += 1
        self._event("power_up", {"boots": self.boots, "restored": restored,
                                 "watchdog_reset": watchdog_reset})
        self._evaluate()
        self._state_dirty = True
        self._plan()

    def tick(self, now):
        # Returns the ms until the core next needs tick() (0: call again at once).
        # This runs every loop pass, so the wrap-safe arithmetic of pump.ticks is inlined.
        self._advance(now)
        d = self._next - self.now
        if d >= _HALF:
            d -= _PERIOD
        elif d < -_HALF:
            d += _PERIOD
        if d > 0:
            return d
        if self.state == RUNNING:
            n = self.basal.due(self.now)
            if n:
                self._command(n)
        if self.in_flight and ticks.diff(self.now, self.confirm_by) >= 0:
            self.strokes_unconfirmed += self.in_flight
            self._event("strokes_unconfirmed", {"strokes": self.in_flight})
            self.in_flight = 0
        if ticks.diff(self.now, self.status_at) >= 0:
            self.status_at = ticks.add(self.now, self.cfg.status_period_ms)
            self._send(self.status())
        if ticks.diff(self.now, self.housekeeping_at) >= 0:
            self.housekeeping_at = ticks.add(self.now, HOUSEKEEPING_MS)
            self._state_dirty = True
            self.actions += 1
        self._plan()
        d = self._next - self.now
        if d >= _HALF:
            d -= _PERIOD
        elif d < -_HALF:
            d += _PERIOD
        return d if d > 0 else 0

    def rotor(self, now, pulses):
        # Rotor pulses counted since the last call: each confirms one commanded stroke.
        self._advance(now)
        confirmed = pulses if pulses <= self.in_flight else self.in_flight
        if pulses > confirmed:
            self.pulses_spurious += pulses - confirmed
        if not confirmed:
            return
        self.in_flight -= confirmed
        self.strokes_confirmed += confirmed
        r = self.reservoir
        r.confirm(confirmed)
        stroke = self.cfg.stroke_nl
        if self.in_flight:
            self.confirm_by = ticks.add(self.now, self._confirm_window(self.in_flight))
        self.lease_left_nl -= confirmed * stroke
        if self.lease_left_nl <= 0:
            self._state_dirty = True
            self.actions += 1
        if r.volume_nl < (self.in_flight + 2) * stroke:
            self._evaluate()
        self._plan()

    def received(self, now, data):
        self._advance(now)
        for frame in self.reader.feed(data):
            self._command_frame(frame)
        self._plan()

    def set_program(self, now, fields):
        # Returns None when accepted, else the refusal reason. A refused program leaves
        # the running one untouched.
        self._advance(now)
        try:
            program = validate(fields, self.cfg.stroke_nl, self.cfg.max_nl_per_day)
        except ProgramError as e:
            self._event("program_refused", {"field": e.field, "reason": e.reason()})
            return e.reason()
        if self.reservoir.conc_ug_per_ml and program.conc_ug_per_ml != self.reservoir.conc_ug_per_ml:
            reason = "conc_ug_per_ml=%d: the reservoir holds %d ug/mL; refill to change it" % (
                program.conc_ug_per_ml, self.reservoir.conc_ug_per_ml)
            self._event("program_refused", {"field": "conc_ug_per_ml", "reason": reason})
            return reason
        self._apply_program(program)
        self._event("program", program.to_dict())
        self._state_dirty = True
        self._plan()
        return None

    def fill(self, now, volume_nl, conc_ug_per_ml):
        # Bench fill of the reservoir. The full refill workflow (residual check,
        # concentration entered twice, bridge) builds on this.
        self._advance(now)
        cap = self.cfg.reservoir_capacity_nl
        if type(volume_nl) is not int or not 0 < volume_nl <= cap:
            return "volume_nl=%r: outside the allowed range 1..%d nL" % (volume_nl, cap)
        if self.program and conc_ug_per_ml != self.program.conc_ug_per_ml:
            return "conc_ug_per_ml=%r: the program is for %d ug/mL" % (
                conc_ug_per_ml, self.program.conc_ug_per_ml)
        self.reservoir.fill(volume_nl, conc_ug_per_ml)
        # stroke counters run from fill to fill, so the reservoir bounds them (< 2**29)
        self.strokes_confirmed = 0
        self.strokes_unconfirmed = 0
        self.basal.strokes = 0
        self._event("fill", {"volume_nl": volume_nl, "conc_ug_per_ml": conc_ug_per_ml})
        self._state_dirty = True
        self._evaluate()
        self._plan()
        return None

    # ---- actions out -------------------------------------------------------------------

    def take_strokes(self):
        # Strokes to make now. Also clears `actions`: the shell calls every take_*()
        # whenever `actions` is set.
        self.actions = 0
        n = self._strokes_out
        self._strokes_out = 0
        return n

    def take_output(self):
        # Frames for the link, oldest first.
        out = self._out
        if not out:
            return ()
        self._out = []
        return out

    def take_log(self):
        # Event records to append to the log file.
        out = self._log
        if not out:
            return ()
        self._log = []
        return out

    def take_state(self):
        # A snapshot to persist (replace STATE_FILE atomically), or None.
        if not self._state_dirty:
            return None
        self._state_dirty = False
        return self._snapshot()

    def deadline(self):
        # Board ticks by which tick() must be called again.
        return ticks.to_board(self._next)

    def _plan(self):
        # The soonest of the core's timers, kept in self._next. Runs twice a stroke, so
        # the wrap-safe differences of pump.ticks are inlined.
        now = self.now
        best = self.housekeeping_at
        best_d = best - now
        if best_d >= _HALF:
            best_d -= _PERIOD
        elif best_d < -_HALF:
            best_d += _PERIOD
        t = self.status_at
        d = t - now
        if d >= _HALF:
            d -= _PERIOD
        elif d < -_HALF:
            d += _PERIOD
        if d < best_d:
            best, best_d = t, d
        if self.state == RUNNING:
            t = self.basal.t_next
            d = t - now
            if d >= _HALF:
                d -= _PERIOD
            elif d < -_HALF:
                d += _PERIOD
            if d < best_d:
                best, best_d = t, d
        if self.in_flight:
            t = self.confirm_by
            d = t - now
            if d >= _HALF:
                d -= _PERIOD
            elif d < -_HALF:
                d += _PERIOD
            if d < best_d:
                best = t
        self._next = best

    def status(self):
        p = self.program
        r = self.reservoir
        return {
            "t": "status",
            "up_day": self.up_day,
            "up_ms": self.up_ms,
            "state": self.state,
            "stop_reason": self.stop_reason,
            "drug": p.drug if p else None,
            "conc_ug_per_ml": r.conc_ug_per_ml,
            "dose_ug_per_day": p.dose_ug_per_day if p else 0,
            "rate_nl_per_day": p.volume_nl_per_day() if p and self.state == RUNNING else 0,
            "strokes_programmed": self.basal.strokes,
            "strokes_confirmed": self.strokes_confirmed,
            "strokes_unconfirmed": self.strokes_unconfirmed,
            "delivered_nl": r.delivered_nl,
            "delivered_ng": r.delivered_ng,
            "reservoir_nl": r.volume_nl,
        }

    # ---- inside ------------------------------------------------------------------------

    def _advance(self, now):
        # Move the core's clock to board tick `now`. Runs on every event: inlined arithmetic.
        s = now - _HALF
        d = s - self.now
        if d >= _HALF:
            d -= _PERIOD
        elif d < -_HALF:
            d += _PERIOD
        if d <= 0:
            return  # same instant (or a stale reading): time never runs backwards here
        self.now = s
        ms = self.up_ms + d
        while ms >= DAY_MS:
            ms -= DAY_MS
            self.up_day += 1
        self.up_ms = ms

    def _apply_program(self, program):
        self.program = program
        k = self.cfg.stroke_nl * program.conc_ug_per_ml  # pg of drug per stroke
        if self.state == RUNNING:
            self.basal.due(self.now)
            self.basal.change(self.now, program.dose_ng_per_day, k)
        else:
            self.basal.start(self.now, 0, k)
        self._evaluate()

    def _evaluate(self):
        # Decide whether delivery runs.
        stroke = self.cfg.stroke_nl
        if self.program is None or self.reservoir.conc_ug_per_ml == 0:
            want, reason = IDLE, None
        elif self.reservoir.volume_nl - self.in_flight * stroke < stroke:
            want, reason = STOPPED, "reservoir_empty"
        else:
            want, reason = RUNNING, None
        if want == self.state and reason == self.stop_reason:
            return
        was_running = self.state == RUNNING
        self.state = want
        self.stop_reason = reason
        if want == RUNNING and not was_running:
            k = stroke * self.program.conc_ug_per_ml
            self.basal.change(self.now, self.program.dose_ng_per_day, k)
        elif was_running:
            self.basal.due(self.now)
            self.basal.change(self.now, 0, self.basal.k)
        self._event("state", {"state": want, "reason": reason})

    def _command(self, n):
        # n strokes fell due: command the ones the reservoir can cover.
        stroke = self.cfg.stroke_nl
        room = (self.reservoir.volume_nl // stroke) - self.in_flight
        if n > room:
            n = room if room > 0 else 0
        if n:
            self._strokes_out += n
            self.actions += 1
            self.in_flight += n
            self.confirm_by = ticks.add(self.now, self._confirm_window(self.in_flight))
        if room - n < 2:
            self._evaluate()

    def _confirm_window(self, strokes):
        # Time the motor gets to turn `strokes` strokes before they count as unconfirmed.
        return strokes * self.cfg.stroke_ms * 2 + 1000

    def _command_frame(self, frame):
        body = frame.body
        cmd = body.get("cmd")
        if cmd == "status":
            self._send(self.status())
            self._send({"t": "result", "cmd": cmd, "re": frame.seq, "ok": True, "code": "ok"})
        else:
            self._send({"t": "result", "cmd": cmd if type(cmd) is str else None,
                        "re": frame.seq, "ok": False, "code": "unknown_command"})

    def _send(self, body):
        self.actions += 1
        self._out.append(wire.encode(self.tx_seq, body))
        self.tx_seq = (self.tx_seq + 1) % wire.SEQ_MODULO

    def _event(self, name, fields):
        fields["t"] = "event"
        fields["ev"] = name
        fields["up_day"] = self.up_day
        fields["up_ms"] = self.up_ms
        self._send(fields)
        self._log.append(self._out[-1])

    def _snapshot(self):
        # Persist with the lease already debited (see PumpConfig.lease_nl).
        r = self.reservoir
        lease = self.cfg.lease_nl
        if lease > r.volume_nl:
            lease = r.volume_nl
        self.lease_left_nl = lease
        body = {
            "t": "state",
            "boots": self.boots,
            "program": self.program.to_dict() if self.program else None,
            "conc_ug_per_ml": r.conc_ug_per_ml,
            "reservoir_nl": r.volume_nl - lease,
            "delivered_nl": r.delivered_nl + lease,
            "delivered_ng": r.delivered_ng + (lease * r.conc_ug_per_ml + 999) // 1000,
            "strokes_confirmed": self.strokes_confirmed,
        }
        return wire.encode(0, body)

    def _restore(self, stored):
        if not stored:
            return False
        frames = wire.Reader().feed(stored)
        if len(frames) != 1 or frames[0].body.get("t") != "state":
            self._event("state_corrupt", {"bytes": len(stored)})
            return False
        s = frames[0].body
        try:
            self.boots = s["boots"]
            self.strokes_confirmed = s["strokes_confirmed"]
            conc = s["conc_ug_per_ml"]
            if conc:
                self.reservoir.fill(s["reservoir_nl"], conc)
                self.reservoir.delivered_nl = s["delivered_nl"]
                self.reservoir.delivered_ng = s["delivered_ng"]
            if s["program"] is not None:
                program = validate(s["program"], self.cfg.stroke_nl, self.cfg.max_nl_per_day)
                self.program = program
                self.basal.start(self.now, 0, self.cfg.stroke_nl * program.conc_ug_per_ml)
        except (KeyError, TypeError, ProgramError) as e:
            self._event("state_corrupt", {"reason": str(e)})
            return False
        return True
