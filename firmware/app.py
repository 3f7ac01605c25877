# The shell: one loop that owns time and I/O. It feeds the core events from the board
# and carries out the core's actions through the board. No therapy decision lives here.
from pump.core import LOG_FILE, STATE_FILE, PumpConfig
from pump.engine import ACT_ANNUNCIATE, ACT_FRAMES, ACT_STATE, ACT_STROKES, WANT_BATTERY, WANT_LOG, WANT_PRESSURE

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

KEYS_FILE = "keys"  # the command keys, written by the tools (docs/security.md)
LOG_MAX_BYTES = const(65536)  # then the log rotates to LOG_FILE + ".1" (one old file kept)
WATCHDOG_MS = const(8000)  # the RP2040 watchdog's limit is 8388 ms
DUTY_PERCENT = const(50)  # the fastest program may keep the motor busy this share of time


def pump_config(board_config, status_period_ms=None):
    c = board_config
    stroke_ms = (c.STEPS_PER_STROKE * 1000 + c.STEP_RATE_HZ - 1) // c.STEP_RATE_HZ
    strokes_per_day = 86400000 // stroke_ms * DUTY_PERCENT // 100
    max_nl_per_day = strokes_per_day * c.STROKE_NL
    if max_nl_per_day > c.MAX_NL_PER_DAY:
        max_nl_per_day = c.MAX_NL_PER_DAY
    return PumpConfig(
        stroke_nl=c.STROKE_NL,
        stroke_ms=stroke_ms,
        reservoir_capacity_nl=c.RESERVOIR_CAPACITY_NL,
        max_nl_per_day=max_nl_per_day,
        status_period_ms=status_period_ms or c.STATUS_PERIOD_MS,
        pressure_zero_raw=c.PRESSURE_ZERO_RAW,
        pressure_raw_per_bar=c.PRESSURE_RAW_PER_BAR,
        battery_low_mv=c.BATTERY_LOW_MV,
        battery_end_mv=c.BATTERY_END_MV,
    )


class App:
    def __init__(self, board, pump):
        self.board = board
        self.pump = pump
        self.steps_per_stroke = board.config.STEPS_PER_STROKE
        self.wait_max_ms = board.config.WAIT_MAX_MS
        self.iterations = 0
        self.motor_on = False
        # bound once: the loop runs every stroke and should not rebuild them
        self._ticks_ms = board.ticks_ms
        self._rotor_take = board.rotor.take
        self._link_read = board.link.read
        self._stepper_busy = board.stepper.busy
        self._feed = board.watchdog.feed
        self._pressure_raw = board.pressure.read_raw

    def start(self):
        b = self.board
        b.watchdog.start(WATCHDOG_MS)
        b.stepper.direction(True)
        self.pump.set_identity(b.device_id, b.storage.read(KEYS_FILE))
        self.pump.power_up(b.ticks_ms(), b.storage.read(STATE_FILE), b.watchdog.caused_reset())
        self._carry_out()

    def step(self):
        # One pass: events in, actions out. Returns the ms the loop may now sleep.
        # Kept to a few locals: a MicroPython frame over 11 words is heap-allocated.
        p = self.pump
        now = self._ticks_ms()
        x = self._rotor_take()
        if x:
            p.rotor(now, x)
        if p.wants:
            self._sample(now)
        x = self._link_read()
        if x:
            p.received(now, x)
        x = p.tick(now)
        if p.actions:
            self._carry_out()
        elif self.motor_on:
            self._release_motor()
        self._feed()
        self.iterations += 1
        return x if x < self.wait_max_ms else self.wait_max_ms

    def run(self, keep_going=None):
        # keep_going: a callable checked every pass (the sim stops after N days); None
        # runs for ever, as on the Pico.
        self.start()
        b = self.board
        while keep_going is None or keep_going():
            b.wait(self.step())

    def _carry_out(self):
        # The state first: a command's counter (and every therapy change) is on the flash
        # before any stroke or answer it caused leaves the pump (docs/security.md).
        p = self.pump
        x = p.actions
        p.actions = 0
        if x & ACT_STATE:
            self._write_state(p.take_state())
        if x & ACT_STROKES:
            self._turn(p.take_strokes())
        if x & ACT_FRAMES:
            self._send(p.take_output())
            self._log(p.take_log())
        if x & ACT_ANNUNCIATE:
            led, tone, every = p.take_annunciation()
            self.board.annunciator.set(led, tone, every)

    def _write_state(self, data):
        if data is None:
            return
        try:
            self.board.storage.write(STATE_FILE, data)
        except OSError:
            # a full or failing flash: therapy goes on, the core raises the alarm
            self.pump.storage_failed(self.board.ticks_ms(), STATE_FILE)

    def _sample(self, now):
        # the board readings the core asked for: the pressure before each stroke, the
        # supply every few minutes
        p = self.pump
        if p.wants & WANT_PRESSURE:
            p.pressure(now, self._pressure_raw())
        if p.wants & WANT_BATTERY:
            p.battery(now, self.board.battery.read_mv())
        if p.wants & WANT_LOG:
            self._serve_log(now)

    def _serve_log(self, now):
        # a log export (the `log` command): the next piece of the stored log, read here
        # because the core does no I/O
        p = self.pump
        s = self.board.storage
        name = p.log_file
        if name is None:
            p.log_begin(now, s.size(LOG_FILE + ".1"), s.size(LOG_FILE))
            return
        try:
            data = s.read_at(name, p.log_offset, p.log_want)
        except OSError:
            data = None
        p.log_chunk(now, data)

    def _turn(self, strokes):
        if not strokes:
            return
        stepper = self.board.stepper
        if not self.motor_on:
            self.motor_on = True
            stepper.enable(True)
        stepper.step(strokes * self.steps_per_stroke)

    def _release_motor(self):
        # the driver is released between strokes (no holding current, no heat)
        if not self._stepper_busy():
            self.motor_on = False
            self.board.stepper.enable(False)

    def _send(self, frames):
        write = self.board.link.write
        for frame in frames:
            write(frame)

    def _log(self, records):
        for record in records:
            self._append_log(record)

    def _append_log(self, record):
        s = self.board.storage
        try:
            if s.size(LOG_FILE) + len(record) > LOG_MAX_BYTES:
                s.remove(LOG_FILE + ".1")
                s.rename(LOG_FILE, LOG_FILE + ".1")
            s.append(LOG_FILE, record)
        except OSError:
            self.pump.storage_failed(self.board.ticks_ms(), LOG_FILE)


def provision(app, program_fields, fill_nl, limits=None, clock=None, actions=None):
    # Bench set-up before the first boot: program and fill an empty pump as a clinician
    # would (fill_nl 0: programmed, not filled). Does nothing when the pump already has a
    # program (it was restored).
    # Optional, in this order: hard limits (before the program they must admit), the wall
    # clock [day, ms] (a flex schedule needs it), and one-off actions after the program
    # (tools/programfile.py: {"action": "clinician_bolus", "dose_ng", "duration_min"}).
    p = app.pump
    if p.program is not None:
        return None
    now = app.board.ticks_ms()
    reason = None
    if limits is not None:
        reason = p.set_limits(now, limits)
    if reason is None and clock is not None:
        reason = p.set_clock(now, clock[0], clock[1])
    if reason is None and fill_nl:  # 0: programmed, left empty for a first fill
        reason = p.fill(now, fill_nl, program_fields.get("conc_ug_per_ml"))
    if reason is None:
        reason = p.set_program(now, program_fields)
    for action in actions or ():
        if reason is not None:
            break
        if action.get("action") == "clinician_bolus":
            reason = p.bolus_request(now, action.get("dose_ng"), action.get("duration_min"))
        else:
            reason = "action %r: unknown (clinician_bolus)" % (action.get("action"),)
    app._carry_out()
    return reason
