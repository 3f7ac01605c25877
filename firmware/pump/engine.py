# The core's engine: time, the stroke clocks, the motor record and the telemetry queue.
# Everything here runs on every stroke or every event; it is the part of the core that
# must stay fast and allocation-free (host_tests/portable/test_mp_alloc.py).
#
# Rules this file keeps:
# 1. No I/O and no clock. Every entry point takes `now`, the board's tick (ms, wraps at
#    2**30); the shell carries out what the core asks through take_*().
# 2. Every integer it keeps stays within +-2**29 (RP2040 small ints), whatever the
#    program; host_tests/test_ranges.py walks the state to prove it.
# 3. Delivery is decided by two exact stroke clocks: the basal (schedule, or keep-open
#    while paused) and the bolus slot. Drug is counted where it leaves the catheter tip
#    (pump.line), so priming fluid is never counted and a bridge keeps the dose.
# 4. Hot functions stay small: MicroPython puts a frame of more than 11 words (locals +
#    value stack) on the heap, on every call.
from pump import alarms as A
from pump import ticks, wire
from pump.auth import Auth, keys_id, parse_keys
from pump.bolus import PRIME
from pump.clock import WallClock
from pump.detect import Pressure, Supply
from pump.exact import muldivmod
from pump.limits import Limits, Window
from pump.line import Line
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
RING = const(16)  # batches of strokes in flight the motor record holds
CONFIRM_LATENCY_MS = const(250)  # a rotor pulse is seen this long after its stroke, at most
CONFIRM_SLACK_MS = const(60000)  # how long a confirmation check may wait for the next stroke
BATTERY_PERIOD_MS = const(600000)  # the supply is sampled every 10 minutes
STOPPED_SAMPLE_MS = const(60000)  # while stopped for an occlusion, the pressure every minute
# An occlusion that keeps coming back (a partial one: the line drains while stopped,
# blocks again once delivery resumes) would raise and clear all day. The third within an
# hour latches: it stays until acknowledged, delivery stopped, one event.
OCCLUSION_REPEATS = const(3)
OCCLUSION_REPEAT_MS = const(3600000)
STALL_RETRIES = const(1)  # unconfirmed strokes are tried once more before the stall alarm
# A retry that the rotor confirms means the first pulse was missed (or the motor
# hesitated). Each such episode adds MISS_WEIGHT to a count that each confirmed stroke
# takes one from; at MISS_ALARM (about 1 stroke in 100 missed, sustained) the rotor
# sensor is alarmed: delivery is then no longer confirmed stroke by stroke.
PRIME_LEASE_STROKES = const(4)  # the lease while priming or bridging: 1 uL of 250 nL strokes
MISS_WEIGHT = const(100)
MISS_ALARM = const(300)

# what the core wants the shell to read from the board (Engine.wants)
WANT_PRESSURE = const(1)
WANT_BATTERY = const(2)
WANT_LOG = const(4)  # a log export runs: the shell reads the next piece of the log

# pump states
IDLE = "idle"  # no program or nothing in the reservoir: no strokes
RUNNING = "running"
STOPPED = "stopped"  # delivery stopped for a reason in self.stop_reason

# what the shell has to collect (Engine.actions)
ACT_STROKES = const(1)  # take_strokes()
ACT_FRAMES = const(2)  # take_output() and take_log()
ACT_STATE = const(4)  # take_state()
ACT_ANNUNCIATE = const(8)  # take_annunciation()

_held = None  # events of a restore in progress (power_up), else None

_BASAL = const(0)  # in-flight batch kinds
_BOLUS = const(1)


class Engine:
    def __init__(self, cfg):
        self.cfg = cfg
        self.state = IDLE
        self.stop_reason = None
        self.program = None
        self.limits = Limits()
        self.window = Window()
        self.reservoir = Reservoir(cfg.stroke_nl)
        self.line = Line()
        self.clock = WallClock()
        self.basal = StrokeClock()
        self.bolus = None
        # a concentration change: [old conc, new conc, up_day, up_ms at its start] while
        # the old drug still fills part of the line (None: no bridge)
        self.bridge = None
        self.paused = False  # clinician pause: the keep-open rate runs
        self.segment_at = None  # signed ticks of the next schedule step boundary (None: no steps)
        self.titration = None  # (schedule, signed ticks it takes effect)
        self.patient_times = []  # signed ticks of patient boluses accepted in the last 24 h
        self.now = 0  # signed ticks of the last event
        self.up_day = 0
        self.up_ms = 0
        self.boots = 0
        # motor: commanded strokes not yet confirmed, as a ring of batches (kind, count)
        self.in_flight = 0
        self._ring_kind = [0] * RING
        self._ring_n = [0] * RING
        self._ring_head = 0
        self._ring_len = 0
        self.confirm_by = None  # signed ticks the strokes in flight must show by (while in_flight)
        self.strokes_confirmed = 0
        self.strokes_unconfirmed = 0
        self.strokes_withheld = 0  # fell due but would have crossed the 24 h limit
        self.pulses_spurious = 0
        self.patient_ng = 0  # drug that left the catheter tip since the last fill ...
        self.patient_pg = 0  # ... plus this many pg
        # The lease (docs/hazards.md, "Power cuts"): volume that may still be commanded
        # under the last state written, which already counts it as gone from the
        # reservoir and into the 24 h record. Commanding past it asks for a new write,
        # which the shell makes before the motor turns. Granted only when strokes need it
        # (none at boot: a restart that delivers nothing costs the account nothing),
        # sized to lease_ms of delivery.
        self.lease_left_nl = 0
        self.lease_due = False  # the next state written grants a new lease
        self.uncertain_nl = 0  # how much the reservoir account may under-state (restarts)
        self._record = None  # pump.record.Out: the state is written into it (pump.persist)
        self._stroke_pg = 0  # drug per stroke while the line is uniform, else 0
        # telemetry
        self.tx_seq = 0
        self.status_at = None  # (the timers below are set at power_up)
        self.housekeeping_at = None
        self.reader = wire.Reader()
        # commands and their authentication (pump.commands, pump.auth)
        self.dev = ""
        self.auth = Auth()
        self.keys_problem = None
        self.keys_id = ""  # names the keys file (pump.auth.keys_id)
        self.keys_blocked = ""  # the keys_id of keys taken out of use (their counters lost)
        self.link_stats = wire.LinkStats()
        self.host_seq = None  # seq of the last frame accepted from the host
        self.bad_frame_at = None  # signed ticks of the last bad_frame result
        self.last_refusal = None  # the fields of the last `refused` event
        self.log_re = None  # a log export runs: the seq of its command, ...
        self.log_file = None  # ...the file being read (None: sizes first)...
        self.log_offset = 0  # ...where...
        self.log_want = 0  # ...and how much to read next
        self.log_records = 0
        self.log_corrupt = 0
        self._strokes_out = 0
        self._out = []
        self._log = []
        self._state_dirty = False
        self._therapy_frame = None  # cached encoding of the settings part of the state
        self._next = 0  # signed ticks of the soonest timer
        self._aux_at = None  # signed ticks of the soonest of the rarely moving timers
        self.actions = 0  # ACT_* bits: which take_*() has something for the shell
        # alarms and their detectors
        self.alarms = A.Alarms()
        self.occl = Pressure(cfg.pressure_zero_raw, cfg.pressure_raw_per_bar)
        self.supply = Supply(cfg.battery_low_mv, cfg.battery_end_mv)
        self.wants = WANT_PRESSURE | WANT_BATTERY  # WANT_* bits: board readings asked for
        self.battery_at = None
        self.sample_at = None  # signed ticks of the next pressure sample while stopped
        self.silence_until = None  # signed ticks a silence ends (None: not silenced)
        self.stall_retries = STALL_RETRIES
        self.misses = 0  # the missed-pulse count (MISS_WEIGHT)
        # minutes of uptime (up_min()) of the occlusion alarms of the last hour: uptime,
        # not ticks, whose differences only hold for 6.2 days
        self.occlusions = []
        self.low_nl = 2000000  # low-reservoir alarm at this volume (implantables: 1-3 mL)
        self.low_days = 7  # ... and when the worst-case projection reaches the floor this soon
        self.floor_nl = 0  # empty: below this the pump stops (0: when not a stroke is left)
        self.days_to_low = -1  # worst-case projection, whole days (-1: beyond the horizon)
        self.days_to_empty = -1
        self.stopped_at = None  # [up_day, up_ms] delivery stopped at for an alarm (None: not stopped)
        self.stopped_wall = None  # (weekday, ms) of the wall clock then
        self._annunciation = A.QUIET
        self._withholding = False  # in an episode of strokes withheld by the 24 h limit

    def power_up(self, now, stored=None, watchdog_reset=False):
        # stored: the bytes of the last snapshot (or None on first boot)
        self.now = ticks.from_board(now)
        self.status_at = self.now
        self.housekeeping_at = ticks.add(self.now, HOUSEKEEPING_MS)
        # what the restore finds (a corrupt state, restored alarms, a bolus it ends or
        # resumes) is recorded after the power_up record, in the boot it belongs to: its
        # events wait in _held meanwhile (a module global, not an attribute: one more
        # would grow every pump's attribute table)
        global _held
        _held = []
        try:
            restored = self._restore(stored)
        finally:
            notes, _held = _held, None
        self.boots += 1
        c = self.clock
        # `wall`: the wall clock at power-up (restored: as stored before the power went),
        # so a reader of the log can place every record of this boot on the wall clock
        self._event("power_up", {"boots": self.boots, "restored": restored,
                                 "watchdog_reset": watchdog_reset,
                                 "clock": "restored" if c.restored else ("set" if c.valid else "not_set"),
                                 "wall": [c.day, c.ms] if c.valid else None})
        for name, fields in notes:
            self._event(name, fields)
        if stored and not restored:
            # the program, the reservoir account and the 24 h record are gone: loud, and
            # the pump stays idle until a clinician programs and fills it again
            self._alarm_event_only(A.STORAGE, {"file": "state", "lost": True})
        if stored and not restored and self.auth.keys:
            # the state held the command counters: without them a captured command
            # could run again, so these keys are not used again (the state remembers
            # which they were) until new ones are provisioned
            self.keys_blocked = self.keys_id
        if self.keys_blocked and self.keys_blocked == self.keys_id:
            self.auth.keys = {}
            self.keys_problem = "the stored state was lost, and the command counters with it: provision new keys"
        if self.keys_problem is not None:
            self._event("keys_invalid", {"reason": self.keys_problem})
        self.battery_at = ticks.add(self.now, BATTERY_PERIOD_MS)
        if watchdog_reset:
            self._alarm_event_only(A.WATCHDOG, {})
        self._clock_check()
        self._evaluate()
        self._project()  # (the days-left alarm must not wait for the first hourly pass)
        self._persist()
        self._plan_aux()
        self._plan()

    # ---- sensor readings the core asked for (wants) ---------------------------------------

    def pressure(self, now, raw):
        # The downstream pressure: one raw ADC reading, once a stroke (and every minute
        # while stopped). Runs every stroke: small.
        self.wants &= ~WANT_PRESSURE
        if self.occl.sample(raw):
            # the reading comes before tick() in the loop's pass: bring the clocks to it
            # first, or a stop starts (and a resume restarts the basal) at the previous
            # pass, a minute back while stopped: a minute's strokes as a catch-up burst
            self._advance(now)
            self._pressure_changed()

    def battery(self, now, mv):
        self.wants &= ~WANT_BATTERY
        if self.supply.sample(mv):
            self._advance(now)
            band = self.supply.band
            # each event its own detail (the alarm calls add code, priority and state);
            # at end of service the supply is still below the low threshold, so
            # battery_low stays (its condition has not gone)
            if band == 2:
                self._alarm(A.END_OF_SERVICE, {"mv": mv})
            else:
                self._alarm_gone(A.END_OF_SERVICE, {"mv": mv})
            if band:
                self._alarm(A.BATTERY_LOW, {"mv": mv})
            else:
                self._alarm_gone(A.BATTERY_LOW, {"mv": mv})
            self._evaluate()
            self._plan()

    def storage_failed(self, now, what):
        # The shell could not write the state file or the log. A failed write is
        # something that happened, with no condition the core could watch go away: the
        # acknowledgement clears it, and a flash that still fails raises it again at the
        # next write (the acknowledgement's own log record, at the latest).
        self._advance(now)
        self._alarm_event_only(A.STORAGE, {"file": what})
        self._plan()

    def take_annunciation(self):
        # (led, tone, tone_every) for board.annunciator.set()
        return self._annunciation

    def tick(self, now):
        # Returns the ms until the core next needs tick() (0: call again at once).
        # Runs every loop pass. Hot functions stay small: MicroPython puts a frame of more
        # than 11 words (locals + stack) on the heap, and this path must not allocate
        # (host_tests/portable/test_mp_alloc.py).
        self._advance(now)
        d = self._next - self.now
        if d >= _HALF:
            d -= _PERIOD
        elif d < -_HALF:
            d += _PERIOD
        if d > 0:
            return d
        self._due(self.now)
        self._plan()
        d = self._next - self.now
        if d >= _HALF:
            d -= _PERIOD
        elif d < -_HALF:
            d += _PERIOD
        return d if d > 0 else 0

    def _due(self, now):
        # everything that fell due by `now`, in order: rate changes (each at its own
        # instant), strokes that timed out unconfirmed (before new strokes extend the
        # window), strokes, status, housekeeping. The rarely moving timers share one
        # deadline (_aux_at), so a plain stroke pass costs one comparison for them.
        aux = ticks.diff(now, self._aux_at) >= 0
        if aux and (self.segment_at is not None or self.titration is not None):
            self._rate_changes(now)
        if self.in_flight and ticks.diff(now, self.confirm_by) >= 0:
            self._give_up_in_flight()
        if self.state == RUNNING:
            self._run_basal(now)
            if self.bolus is not None:
                self._run_bolus(now)
        if aux:
            self._aux(now)

    def _aux(self, now):
        if ticks.diff(now, self.battery_at) >= 0:
            self.battery_at = ticks.add(now, BATTERY_PERIOD_MS)
            self.wants |= WANT_BATTERY
        if self.sample_at is not None and ticks.diff(now, self.sample_at) >= 0:
            self.sample_at = ticks.add(now, STOPPED_SAMPLE_MS)
            self.wants |= WANT_PRESSURE
        if self.silence_until is not None and ticks.diff(now, self.silence_until) >= 0:
            self.silence_until = None
            self.alarms.silenced = False
            self._event("silence_end", {})
            self._annunciate()
        if ticks.diff(now, self.status_at) >= 0:
            self.status_at = ticks.add(now, self.cfg.status_period_ms)
            self._send(self.status())
        if ticks.diff(now, self.housekeeping_at) >= 0:
            self.housekeeping_at = ticks.add(now, HOUSEKEEPING_MS)
            self._project()
            self._persist()
        self._plan_aux()

    def _rate_changes(self, now):
        while True:
            seg = self.segment_at if self.state == RUNNING and self.segment_at is not None and ticks.diff(
                now, self.segment_at) >= 0 else None
            tit = self.titration[1] if self.titration is not None and ticks.diff(
                now, self.titration[1]) >= 0 else None
            if seg is None and tit is None:
                return
            if tit is not None and (seg is None or ticks.diff(seg, tit) >= 0):
                self._apply_titration(tit)
            else:
                self._retune(seg)

    def _run_bolus(self, now):
        n = self.bolus.due(now)
        if n:
            self._command(n, _BOLUS)
        if self.bolus is not None:
            self._bolus_progress()

    def rotor(self, now, pulses):
        # Rotor pulses counted since the last call: each confirms the oldest commanded
        # stroke. Runs every stroke; split in small functions (see tick).
        self._advance(now)
        n = pulses if pulses <= self.in_flight else self.in_flight
        if pulses > n:
            self.pulses_spurious += pulses - n
        if not n:
            return
        i = self._ring_head
        if self._stroke_pg and self._ring_kind[i] == _BASAL and self._ring_n[i] >= n:
            self._confirm_basal(n)
        else:
            self._confirm_each(n)
        self._confirmed(n)

    def _confirm_basal(self, n):
        # the steady state: n basal strokes of one known size
        i = self._ring_head
        self._ring_n[i] -= n
        if not self._ring_n[i]:
            self._ring_head = (i + 1) % RING
            self._ring_len -= 1
        self.reservoir.confirm(n)
        pg = self.patient_pg + self._stroke_pg * n
        if pg >= 1000:
            self.patient_ng += pg // 1000
            pg %= 1000
        self.patient_pg = pg

    def _confirm_each(self, n):
        # strokes of differing drug (a bridge, priming) or belonging to a bolus
        while n:
            n -= 1
            self._confirm_one(self._ring_pop())

    def _confirm_one(self, kind):
        self.reservoir.confirm(1)
        pg = self._stroke_pg if self._stroke_pg else self.line.push(self.cfg.stroke_nl, self.reservoir.conc_ug_per_ml)
        p = self.patient_pg + pg
        self.patient_ng += p // 1000
        self.patient_pg = p % 1000
        if kind == _BOLUS and self.bolus is not None:
            self.bolus.confirm(pg)

    def _confirmed(self, n):
        # Confirmations only retire timers (the in-flight check), so self._next can stay:
        # at worst it wakes the loop early. It is replanned where rates or state change.
        self.in_flight -= n
        self.strokes_confirmed += n
        if self.stall_retries != STALL_RETRIES:
            self._retry_confirmed()
        elif self.misses:
            self.misses -= n if n < self.misses else self.misses
        if self.in_flight:
            self.confirm_by = ticks.add(self.now, self._confirm_window(self.in_flight))
        if not self._stroke_pg:
            self._line_moved()
            self._plan()
        if self.bolus is not None:
            self._bolus_progress()
        v = self.reservoir.volume_nl
        if v <= self.low_nl:
            self._reservoir_check()
        if v < self.floor_nl + (self.in_flight + 2) * self.cfg.stroke_nl:
            self._evaluate()
            self._plan()

    # ---- the link: pump.commands is loaded at the first frame (its RAM counts) ---------

    def set_identity(self, dev, keys_data):
        # The board's device id and the bytes of its `keys` file (None if absent); before
        # power_up(). A bad file leaves the pump without keys (no therapy command runs).
        self.dev = dev
        self.auth.keys, self.keys_problem = parse_keys(keys_data, dev)
        self.keys_id = keys_id(keys_data) if keys_data else ""

    def received(self, now, data):
        from pump import commands
        commands.received(self, now, data)

    def log_begin(self, now, old_size, new_size):
        from pump import commands
        commands.log_begin(self, now, old_size, new_size)

    def log_chunk(self, now, data):
        from pump import commands
        commands.log_chunk(self, now, data)

    def _persist(self):
        # ask the shell to write the state file
        self._state_dirty = True
        self.actions |= ACT_STATE

    def take_strokes(self):
        # Strokes to make now. The shell calls the take_*() that `actions` names
        # (ACT_STROKES, ACT_FRAMES, ACT_STATE bits) and then clears it.
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

    def deadline(self):
        # Board ticks by which tick() must be called again.
        return ticks.to_board(self._next)

    def _advance(self, now):
        # Move the core's clocks to board tick `now`. Runs on every event: inlined arithmetic.
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
        c = self.clock
        if c.valid:
            ms = c.ms + d
            if ms >= DAY_MS:
                c.advance(d)
            else:
                c.ms = ms
        w = self.window
        left = w.bucket_left_ms - d
        if left > 0:
            w.bucket_left_ms = left
        else:
            w.advance(d)

    def _plan_aux(self):
        # The soonest of the rarely moving timers; call after any of them moves.
        now = self.now
        t = self._sooner(self.housekeeping_at, self.status_at, now)
        t = self._sooner(t, self.battery_at, now)
        if self.sample_at is not None:
            t = self._sooner(t, self.sample_at, now)
        if self.silence_until is not None:
            t = self._sooner(t, self.silence_until, now)
        if self.titration is not None:
            t = self._sooner(t, self.titration[1], now)
        if self.state == RUNNING and self.segment_at is not None:
            t = self._sooner(t, self.segment_at, now)
        if self.log_re is not None:
            t = now  # a log export runs: one piece a pass, no sleeping meanwhile
        self._aux_at = t

    def _plan(self):
        # The soonest of all the core's timers, kept in self._next. Runs every stroke.
        t = self._aux_at
        if self.state == RUNNING:
            if self.basal.rate:
                t = self._sooner(t, self.basal.t_next, self.now)
            if self.bolus is not None:
                t = self._bolus_next(t)
        if self.in_flight:
            c = self._confirm_check_at()
            if c != self.basal.t_next:
                t = self._sooner(t, c, self.now)
        self._next = t

    def _bolus_next(self, t):
        b = self.bolus
        if b.clock is not None and not b.commanded_all():
            return self._sooner(t, b.clock.t_next, self.now)
        return t

    def _confirm_check_at(self):
        # When to look for the rotor pulses of the strokes in flight: when their window
        # closes, or with the next basal stroke if that comes within CONFIRM_SLACK_MS
        # after it (one pass a stroke instead of two; a stall still shows by the next
        # stroke). Pulses are counted by the board meanwhile.
        t = self.confirm_by
        if self.state == RUNNING and self.basal.rate:
            d = ticks.diff(self.basal.t_next, t)
            if 0 < d <= CONFIRM_SLACK_MS:
                return self.basal.t_next
        return t

    @staticmethod
    def _sooner(a, b, now):
        # the earlier of two signed ticks, both within 2**29 ms of now
        da = a - now
        if da >= _HALF:
            da -= _PERIOD
        elif da < -_HALF:
            da += _PERIOD
        db = b - now
        if db >= _HALF:
            db -= _PERIOD
        elif db < -_HALF:
            db += _PERIOD
        return b if db < da else a

    def _changed(self, at=None):
        # After any therapy change: re-decide the state and the rates, project the
        # reservoir, persist, replan.
        self._therapy_frame = None
        self._evaluate()
        self._retune(at)
        self._project()
        self._persist()
        self._plan()

    def _empty_check(self):
        # not a whole stroke left above the floor (the unusable residual)
        r = self.reservoir
        if r.conc_ug_per_ml and r.volume_nl - self.in_flight * self.cfg.stroke_nl < self.floor_nl + self.cfg.stroke_nl \
                and self.alarms.get(A.EMPTY) is None:
            self._alarm(A.EMPTY, {"reservoir_nl": r.volume_nl})

    def _evaluate(self):
        # Decide whether delivery runs: idle without a program or drug, stopped while an
        # alarm that stops delivery is active, else running.
        self._empty_check()
        stop = self.alarms.stopping()
        if self.program is None or self.reservoir.conc_ug_per_ml == 0:
            want, reason = IDLE, None
        elif stop is not None:
            want, reason = STOPPED, stop.code
        else:
            want, reason = RUNNING, None
        if want != self.state or reason != self.stop_reason:
            self._transition(want, reason)

    def _transition(self, want, reason):
        was = self.state
        self.state = want
        self.stop_reason = reason
        self._event("state", {"state": want, "reason": reason})
        if want == STOPPED:
            if self.stopped_at is None:
                self.stopped_at = [self.up_day, self.up_ms]
                self.stopped_wall = self._wall_at(self.now) if self.clock.valid else (0, 0)
            if self.sample_at is None:
                # the pressure keeps being read, so a cleared occlusion is seen (also
                # when the pump restarted into the stop)
                self.sample_at = ticks.add(self.now, STOPPED_SAMPLE_MS)
        else:
            if was == STOPPED and want == RUNNING and self.stopped_at is not None:
                self._log_missed()
            self.stopped_at = None
            self.sample_at = None
        b = self.bolus
        if b is not None:
            if want != RUNNING and b.kind != PRIME:
                # a bolus does not outlast a stop: hours later it would be a surprise
                self._end_bolus(reason or want)
            elif want == RUNNING:
                # priming waits through a stop and goes on from here, at its own pace:
                # nothing that fell due meanwhile is owed
                b.restart(self.now)
        self._retune()
        self._plan_aux()

    def _log_missed(self):
        # Delivery resumes at the programmed rate from now: what the schedule programmed
        # while the pump was stopped is not made up (no catch-up burst, IEC 60601-2-24's
        # unintended bolus), and is logged.
        # (uptime, not ticks: a stop can outlast the 6.2 days a tick difference holds)
        stopped_ms = (self.up_day - self.stopped_at[0]) * DAY_MS + self.up_ms - self.stopped_at[1]
        p = self.program
        missed_ng = -1
        if p is not None:
            wd, ms = self.stopped_wall
            missed_ng = p.schedule.integral_ng_ceil(wd, ms, stopped_ms)
        conc = self.reservoir.conc_ug_per_ml
        self._event("resumed", {"stopped_ms": stopped_ms, "missed_ng": missed_ng,
                                "missed_nl": missed_ng * 1000 // conc if missed_ng > 0 and conc else 0})
        self.stopped_at = None

    # ---- alarms -----------------------------------------------------------------------

    def _alarm(self, code, detail):
        # Raise an alarm: an event only when it is new (repeats are not news).
        if not self.alarms.raise_(code):
            return
        a = self.alarms.get(code)
        detail["code"] = code
        detail["priority"] = A.PRIORITY_NAMES[a.priority]
        detail["state"] = "raised"
        self._event("alarm", detail)
        self._persist()  # the latch must survive a restart that comes before the next snapshot
        if self.alarms.silenced:
            # something new: the silence ends, everything active sounds again
            self.alarms.silenced = False
            self.silence_until = None
        self._annunciate()
        if a.delivery == A.STOP and self.state == RUNNING:
            self._evaluate()

    def _alarm_gone(self, code, detail):
        if self.alarms.gone(code):
            detail["code"] = code
            detail["state"] = "cleared"
            self._event("alarm", detail)
            self._persist()
            self._annunciate()
            self._evaluate()

    def _alarm_release(self, code):
        # a settings change made the condition untrue: the alarm goes whatever its rule
        a = self.alarms.get(code)
        if a is not None:
            self.alarms.active.remove(a)
            self._event("alarm", {"code": code, "state": "cleared"})
            self._annunciate()

    def _alarm_event_only(self, code, detail):
        # an alarm for something that happened (no lasting condition): acknowledging
        # it clears it
        self._alarm(code, detail)
        self.alarms.gone(code)

    def _annunciate(self):
        new = self.alarms.annunciation()
        if new != self._annunciation:
            self._annunciation = new
            self.actions |= ACT_ANNUNCIATE

    def _pressure_changed(self):
        o = self.occl
        if o.fault:
            self._alarm(A.SENSOR, {"raw": o.last_raw})
        else:
            self._alarm_gone(A.SENSOR, {})
            if o.occluded:
                if self.alarms.get(A.OCCLUSION) is None:
                    self._occlusion_count()
                    self._alarm(A.OCCLUSION, {"excess_mbar": o.excess, "baseline_mbar": o.baseline})
                    if len(self.occlusions) >= OCCLUSION_REPEATS:
                        # latched from the start: an acknowledgement while the line is
                        # still blocked does not count
                        self.alarms.get(A.OCCLUSION).clears = A.LATCH
                        self._event("alarm", {"code": A.OCCLUSION, "state": "latched",
                                              "episodes": len(self.occlusions)})
                        self._persist()
                else:
                    self.alarms.raise_(A.OCCLUSION)
            else:
                self._alarm_gone(A.OCCLUSION, {"excess_mbar": o.excess})
        self._evaluate()
        self._plan()

    def _occlusion_count(self):
        # a new occlusion alarm: counted with those of the last hour
        self._occlusions_recent()
        self.occlusions.append(self.up_min())

    def _occlusions_recent(self):
        t = self.occlusions
        while t and self.up_min() - t[0] >= OCCLUSION_REPEAT_MS // 60000:
            t.pop(0)
        return t

    def up_min(self):
        # minutes since power-up: small for two thousand years
        return self.up_day * 1440 + self.up_ms // 60000

    def _clock_check(self):
        c = self.clock
        if c.valid and not c.restored:
            self._alarm_gone(A.CLOCK, {})
        else:
            self._alarm(A.CLOCK, {"restored": c.restored})

    def _reservoir_check(self):
        # the low-reservoir alarms, by volume and by the worst-case projection
        r = self.reservoir
        if not r.conc_ug_per_ml or self.program is None:
            return
        if r.volume_nl <= self.low_nl and self.alarms.get(A.LOW_VOLUME) is None:
            self._alarm(A.LOW_VOLUME, {"reservoir_nl": r.volume_nl, "low_nl": self.low_nl})
        if 0 <= self.days_to_empty <= self.low_days and self.alarms.get(A.LOW_DAYS) is None:
            self._alarm(A.LOW_DAYS, {"days_to_empty": self.days_to_empty, "low_days": self.low_days})

    def _project(self):
        # When the reservoir reaches the low level and the floor, worst case (pump.projection)
        p = self.program
        r = self.reservoir
        if p is None or not r.conc_ug_per_ml:
            self.days_to_low = self.days_to_empty = -1
            return
        from pump.projection import Need
        wd, ms = self._wall_at(self.now) if self.clock.valid else (0, 0)
        need = Need(p, self._tip_conc(), wd, ms, self.paused)
        self.days_to_low = need.days_until(r.volume_nl, self.low_nl)
        self.days_to_empty = need.days_until(r.volume_nl, self.floor_nl)
        self._reservoir_check()

    def _retune(self, at=None):
        # Set the basal clock to the rate and stroke size that apply from `at` (signed
        # ticks, not after now; default now). Strokes due before `at` go out first at the
        # old rate, so a late tick still changes the rate at the exact instant.
        if at is None:
            at = self.now
        basal = self.basal
        if basal.rate and self.state == RUNNING:
            # (when delivery has just stopped, a stroke due this instant is not given:
            # the stop wins, and the stroke is part of what the stop missed)
            n = basal.due(at)
            if n:
                self._command(n, _BASAL)
        p = self.program
        rate = 0
        self.segment_at = None
        if self.state == RUNNING and p is not None:
            b = self.bolus
            if b is not None and b.kind == PRIME:
                rate = 0
            elif self.paused:
                rate = p.keep_open_nl_per_day * self._tip_conc() // 1000
            else:
                rate = p.continuous_ng_per_day()
                if rate < 0:
                    wd, ms = self._wall_at(at)
                    rate = p.schedule.rate_at(wd, ms)
                    self.segment_at = ticks.add(at, p.schedule.ms_to_change(wd, ms))
            if rate > self.limits.max_rate_ng_per_day:
                # every path to a rate checks it against the maximum first; should one
                # ever fail to, the hard limit still holds here
                self._alarm_event_only(A.LIMIT, {"limit": "max_rate", "rate_ng_per_day": rate})
                rate = self.limits.max_rate_ng_per_day
        self._plan_aux()
        k = self._tip_stroke_pg(self.in_flight)
        line = self.line
        self._stroke_pg = k if line.uniform() and line.tip_conc() in (-1, self.reservoir.conc_ug_per_ml) else 0
        if rate != basal.rate or k != basal.k:
            basal.change(at, rate, k)
            if self.state != RUNNING:
                basal.drop_whole()

    def _wall_at(self, at):
        # (weekday, ms of day) of the wall clock at signed ticks `at` (not after now)
        c = self.clock
        ms = c.ms - ticks.diff(self.now, at)
        day = c.day
        while ms < 0:
            ms += DAY_MS
            day -= 1
        return (day + 5) % 7, ms

    def _run_basal(self, now):
        basal = self.basal
        if not basal.rate:
            return
        if self._stroke_pg:
            n = basal.due(now)
            if n:
                self._command(n, _BASAL)
            return
        # the line is not uniform (a bridge, priming): the drug in each stroke differs,
        # so take the strokes one at a time and size the next after each
        while basal.rate and basal.due_one(now):
            self._command(1, _BASAL)
            k = self._tip_stroke_pg(self.in_flight)
            if k != basal.k:
                basal.change(now, basal.rate, k)

    def _tip_conc(self):
        c = self.line.tip_conc()
        return c if c > 0 else self.reservoir.conc_ug_per_ml

    def _tip_stroke_pg(self, offset_strokes):
        # drug (pg) in the stroke that leaves the tip after offset_strokes more; fluid
        # without drug (priming) is sized as reservoir drug so the volume keeps moving
        stroke = self.cfg.stroke_nl
        conc = self.reservoir.conc_ug_per_ml
        pg = self.line.pg_of(offset_strokes * stroke, stroke, conc) if self.line.segments else stroke * conc
        return pg if pg > 0 else stroke * (conc if conc else 1)

    def _line_moved(self):
        # the line changed under a confirmed stroke: end a bridge, re-size the basal
        if self.bridge is not None:
            self._bridge_check()
        if self.line.uniform() and self.line.tip_conc() == self.reservoir.conc_ug_per_ml:
            self._retune()

    def _bridge_start(self, old, new, volume_nl):
        if self.bridge is None:
            self.bridge = [old, new, self.up_day, self.up_ms]
        else:
            self.bridge[1] = new  # a second change while the first still clears
        self._event("bridge_start", {"from_conc_ug_per_ml": old, "to_conc_ug_per_ml": new, "volume_nl": volume_nl})

    def _bridge_check(self):
        # The bridge ends when no drug of another strength is left in the line (priming
        # fluid is no drug: a prime ends a bridge too).
        br = self.bridge
        if br is None or self.line.holds_other(self.reservoir.conc_ug_per_ml):
            return
        self.bridge = None
        # all the drug that left the tip since the refill: the old strength, then the new
        self._event("bridge_end", {"from_conc_ug_per_ml": br[0], "to_conc_ug_per_ml": br[1],
                                   "delivered_ng": self.patient_ng,
                                   "duration_min": (self.up_day - br[2]) * 1440 + (self.up_ms - br[3]) // 60000})

    def _command(self, n, kind):
        # n strokes fell due: command those the reservoir covers and the 24 h limit allows.
        room = (self.reservoir.volume_nl - self.floor_nl) // self.cfg.stroke_nl - self.in_flight
        if n > room:
            n = room if room > 0 else 0
        if n and not self._within_24h(n):
            n = 0
        if n:
            self._commit(n, kind)
        if room - n < 2:
            self._evaluate()

    def _within_24h(self, n):
        # the runtime guard: count n more strokes in the 24 h window, or withhold them
        pg = n * self._stroke_pg if self._stroke_pg else self._line_pg(n)
        w = self.window
        if w.total_ng + (w.pg + pg + 999) // 1000 <= self.limits.max_24h_ng:
            w.add_pg(pg)
            self._withholding = False
            return True
        self.strokes_withheld += n
        if not self._withholding:
            # once an episode (the status counts every stroke withheld): no flood
            self._withholding = True
            self._event("withheld", {"strokes": n, "window_24h_ng": w.total_ng,
                                     "max_24h_ng": self.limits.max_24h_ng})
            self._alarm_event_only(A.LIMIT, {"limit": "max_24h", "withheld": n})
        return False

    def _line_pg(self, n):
        # drug in the next n strokes to leave the tip, after those in flight
        stroke = self.cfg.stroke_nl
        return self.line.pg_of(self.in_flight * stroke, n * stroke, self.reservoir.conc_ug_per_ml)

    def _commit(self, n, kind):
        self.lease_left_nl -= n * self.cfg.stroke_nl
        if self.lease_left_nl < 0:
            # past the lease: these strokes go into the state (in flight) with a new
            # lease, written before they turn
            self.lease_left_nl = 0
            self.lease_due = True
            self._persist()
        self._strokes_out += n
        self.actions |= ACT_STROKES
        self.wants |= WANT_PRESSURE
        self.in_flight += n
        self._ring_push(kind, n)
        if kind == _BOLUS:
            self.bolus.strokes_commanded += n
        if self.in_flight == n:
            # the motor was idle: these strokes must show within their window. Strokes
            # added to a running batch do not move the deadline (at a high rate one would
            # every time, and a stall would never be seen): the oldest stroke must still
            # show by it, and each confirmation renews it for the rest (_confirmed).
            self.confirm_by = ticks.add(self.now, self._confirm_window(n))

    def _ring_push(self, kind, n):
        i = (self._ring_head + self._ring_len - 1) % RING
        if self._ring_len and self._ring_kind[i] == kind:
            self._ring_n[i] += n
            return
        if self._ring_len == RING:
            # never in practice: batches merge and the motor confirms as it goes; keep
            # the record bounded by folding the newest into the last
            self._ring_n[i] += n
            return
        i = (self._ring_head + self._ring_len) % RING
        self._ring_kind[i] = kind
        self._ring_n[i] = n
        self._ring_len += 1

    def _ring_pop(self):
        i = self._ring_head
        kind = self._ring_kind[i]
        self._ring_n[i] -= 1
        if self._ring_n[i] == 0:
            self._ring_head = (i + 1) % RING
            self._ring_len -= 1
        return kind

    def _retry_confirmed(self):
        # the stroke after an unconfirmed one turned the rotor: a pulse was missed (or
        # the motor hesitated once)
        self.stall_retries = STALL_RETRIES
        self.misses += MISS_WEIGHT
        if self.misses >= MISS_ALARM:
            self._alarm(A.ROTOR, {"misses": self.misses // MISS_WEIGHT})
        elif self.misses < MISS_ALARM // 3 and self.alarms.get(A.ROTOR) is not None:
            self._alarm_gone(A.ROTOR, {})

    def _give_up_in_flight(self):
        # The motor had its time and the rotor did not confirm these strokes: they are
        # counted as not delivered, but debited from what is left (they may have turned
        # under a sensor that missed their pulse). The next stroke the schedule makes is
        # the retry: confirmed, the first pulse was missed (or the motor hesitated once);
        # unconfirmed too, the motor has stalled and the alarm stops delivery. Nothing
        # is commanded again, so a missed pulse never makes the head pump more than
        # programmed, even for a moment; a motor that truly hesitated gives that stroke
        # less.
        n = self.in_flight
        self.strokes_unconfirmed += n
        self.reservoir.unconfirmed(n)
        b = self.bolus
        while self._ring_len:
            i = self._ring_head
            if self._ring_kind[i] == _BOLUS and b is not None:
                b.strokes_unconfirmed += self._ring_n[i]
            self._ring_head = (i + 1) % RING
            self._ring_len -= 1
        self.in_flight = 0
        if self.stall_retries > 0:
            self.stall_retries -= 1
            self._event("strokes_unconfirmed", {"strokes": n, "retry": True})
        else:
            self._event("strokes_unconfirmed", {"strokes": n, "retry": False})
            self._alarm(A.STALL, {"strokes": n})
        if b is not None and self.bolus is not None:
            self._bolus_progress()

    def _fill_in_flight(self):
        # A refill restarts the fill's counters. Strokes still turning when it is applied
        # are confirmed into the new fill (whichever fill they drew from, the account of
        # what is left can only be under-stated this way), so they are counted among its
        # programmed strokes too.
        n = 0
        for j in range(self._ring_len):
            i = (self._ring_head + j) % RING
            if self._ring_kind[i] == _BASAL:
                n += self._ring_n[i]
        self.basal.strokes = n

    def _lease_nl(self):
        # The next lease: lease_ms of delivery at the rate running now (basal and bolus),
        # at least a stroke, at most the config's lease_nl; while the line holds fluid of
        # another strength (priming, a bridge) PRIME_LEASE_STROKES, so that what a restart
        # cannot know about the line stays a few strokes.
        stroke = self.cfg.stroke_nl
        nl = 0
        if self.basal.rate:
            nl, _ = muldivmod(self.basal.rate, 1000, 0, self._tip_conc())
            nl //= DAY_MS // self.cfg.lease_ms
        b = self.bolus
        cap = self.cfg.lease_nl
        if b is not None and b.clock is not None:
            nl += b.strokes_total * stroke // (b.duration_ms // self.cfg.lease_ms + 1)
        if not self.line.uniform() or (b is not None and b.kind == PRIME):
            cap = PRIME_LEASE_STROKES * stroke
        if nl > cap:
            nl = cap
        return nl if nl > stroke else stroke

    def _confirm_window(self, strokes):
        # Time the motor gets to turn `strokes` strokes before they count as unconfirmed.
        # Twice the motor's time, plus CONFIRM_LATENCY_MS for the loop to see the pulse.
        return strokes * self.cfg.stroke_ms * 2 + CONFIRM_LATENCY_MS

    def _bolus_progress(self):
        b = self.bolus
        if b.commanded_all() and b.settled():
            self._end_bolus("done")

    def _end_bolus(self, why):
        b = self.bolus
        self.bolus = None
        fields = b.to_wire()
        fields["end"] = why
        self._event("bolus_end", fields)
        self._changed()

    def _apply_titration(self, at=None):
        program, _ = self.titration
        self.titration = None
        # checked again when it applies: the limits may have changed since it was accepted
        from pump import guard
        refusal = guard.program_refusal(program, self.limits)
        if refusal:
            self._event("titration_refused", {"limit": refusal[0], "reason": refusal[1]})
            self._alarm_event_only(A.LIMIT, {"limit": refusal[0], "what": "titration"})
            return
        program.conc_ug_per_ml = self.reservoir.conc_ug_per_ml or program.conc_ug_per_ml
        self.program = program
        self._event("program", program.to_dict())
        self._changed(at)

    def _send(self, body):
        self.actions |= ACT_FRAMES
        self._out.append(wire.encode(self.tx_seq, body))
        self.tx_seq = (self.tx_seq + 1) % wire.SEQ_MODULO

    def _event(self, name, fields):
        if _held is not None:  # restoring at power-up: recorded after the power_up record
            _held.append((name, fields))
            return
        fields["t"] = "event"
        fields["ev"] = name
        fields["up_day"] = self.up_day
        fields["up_ms"] = self.up_ms
        self._send(fields)
        self._log.append(self._out[-1])
