# The real Pico board (boards/pico) on fake hardware (host_tests/fakes): its pins, PIO
# program, IRQ handler, ADC conversions, watchdog, annunciator and wait do what the HAL
# contract (docs/hal.md) says. Runs under pytest on CPython and under mp_runner.py on the
# MicroPython unix port, where it also proves the IRQ paths allocate nothing.
#
# mp-heap: 256k
# (the fake machine and rp2 modules, with a PIO assembler, beside the whole firmware's
# bytecode, which a Pico keeps in flash when the firmware is frozen into its image)
import machine

from boards.fsstorage import FsStorage
from boards.pico import Board
from boards.pico import config as pico_config
from boards.pico import run as pico_run
from boards.pico import uln2003
from check import raises, scratch_dir

W = machine.world
START_MS = (1 << 30) - 3000  # 3 s before the tick wrap: most tests cross it


class Config:
    # config.py with a few values changed, as a config module would be
    def __init__(self, **changes):
        for name in dir(pico_config):
            if name.isupper():
                setattr(self, name, getattr(pico_config, name))
        for name in changes:
            setattr(self, name, changes[name])


class FakeLink:
    # A link whose wait() moves the virtual clock; bytes can be set to arrive at a time.
    def __init__(self):
        self.inbox = b""
        self.sent = []
        self.arrivals = []  # (virtual us, bytes), in time order

    def read(self):
        data = self.inbox
        self.inbox = b""
        return data

    def write(self, data):
        self.sent.append(data)

    def wait(self, timeout_ms):
        if self.inbox:
            return True
        end_us = W.now_us + timeout_ms * 1000
        if self.arrivals and self.arrivals[0][0] <= end_us:
            at_us, data = self.arrivals.pop(0)
            if at_us > W.now_us:
                W.advance_us(at_us - W.now_us)
            self.inbox += data
            return True
        W.advance_us(timeout_ms * 1000)
        return False


def make_board(**changes):
    W.reset(START_MS)
    cfg = Config(**changes)
    return Board(cfg, link=FakeLink(), storage=FsStorage(scratch_dir("pico")), clock=W.clock)


def pin(gpio):
    return W.pin(gpio)


# ---- the contract ---------------------------------------------------------------------------

def test_board_has_every_hal_attribute():
    b = make_board()
    assert b.name == "pico"
    c = b.config
    for name in ("STROKE_NL", "STEPS_PER_STROKE", "STEP_RATE_HZ", "RESERVOIR_CAPACITY_NL",
                 "MAX_NL_PER_DAY", "PRESSURE_ZERO_RAW", "PRESSURE_RAW_PER_BAR",
                 "STATUS_PERIOD_MS", "WAIT_MAX_MS"):
        assert type(getattr(c, name)) is int and getattr(c, name) > 0, name
    assert c.WAIT_MAX_MS <= 500
    assert 0 <= b.ticks_ms() < (1 << 30)
    for obj, names in ((b, ("wait", "ticks_ms")),
                       (b.stepper, ("enable", "direction", "step", "busy", "abort")),
                       (b.rotor, ("take",)), (b.pressure, ("read_raw",)),
                       (b.battery, ("read_mv",)),
                       (b.storage, ("read", "write", "append", "size", "rename", "remove")),
                       (b.link, ("read", "write")),
                       (b.watchdog, ("start", "feed", "caused_reset")),
                       (b.annunciator, ("set", "tick"))):
        for name in names:
            assert callable(getattr(obj, name)), name


def test_config_pins_avoid_the_picos_own_pins():
    c = pico_config
    gpios = [c.STEP_PIN, c.DIR_PIN, c.EN_PIN, c.ROTOR_PIN, c.BUZZER_PIN, c.SERVICE_PIN]
    gpios += list(c.ULN2003_PINS)
    assert len(set(gpios)) == len(gpios), "two functions on one GPIO"
    for g in gpios:
        assert g not in (23, 24, 25, 29) and 2 <= g <= 22, g  # GP0/1: debug UART
    assert c.PRESSURE_ADC_PIN == 26 and c.VSYS_ADC_PIN == 29
    assert c.STEP_RATE_HZ * 32 >= 1908  # the slowest PIO clock MicroPython can set


def test_ticks_ms_wraps_at_2_30():
    b = make_board()
    before = b.ticks_ms()
    W.advance_ms(4000)
    after = b.ticks_ms()
    assert after < before and after == (START_MS + 4000) % (1 << 30)


# ---- STEP/DIR stepper: the PIO program --------------------------------------------------------

def test_step_makes_exactly_n_pulses_at_the_step_rate():
    b = make_board()
    s = b.stepper
    s.enable(True)
    s.step(100)
    assert s.busy()
    W.advance_ms(125)  # half of 100 steps at 400 Hz
    rises = pin(pico_config.STEP_PIN).rises
    assert 49 <= rises <= 51, rises
    assert s.busy()
    W.advance_ms(150)
    assert pin(pico_config.STEP_PIN).rises == 100
    assert not s.busy()
    assert s.steps_made == 100
    assert pin(pico_config.STEP_PIN).level == 0
    W.advance_ms(500)
    assert pin(pico_config.STEP_PIN).rises == 100  # nothing more without a step()


def test_step_calls_queue_and_never_block():
    b = make_board()
    s = b.stepper
    sm = s._sm
    for _ in range(10):
        s.step(10)  # the fake's put() raises where the device's would block
    assert sm.tx_fifo() <= 4
    assert len(sm.words_put) == 4  # the rest waits as backlog
    for _ in range(40):
        W.advance_ms(10)
        s.busy()
    assert pin(pico_config.STEP_PIN).rises == 100
    assert not s.busy()
    assert sum(w + 1 for w in sm.words_put) == 100


def test_step_zero_or_negative_is_ignored():
    b = make_board()
    b.stepper.step(0)
    b.stepper.step(-3)
    assert not b.stepper.busy()
    assert b.stepper._sm.words_put == []


def test_enable_and_direction_drive_their_pins():
    b = make_board()
    en = pin(pico_config.EN_PIN)
    d = pin(pico_config.DIR_PIN)
    assert en.level == 1, "the driver must start released (EN is active low)"
    b.stepper.enable(True)
    assert en.level == 0
    b.stepper.enable(False)
    assert en.level == 1
    b.stepper.direction(True)
    assert d.level == pico_config.DIR_FORWARD_LEVEL
    b.stepper.direction(False)
    assert d.level == 1 - pico_config.DIR_FORWARD_LEVEL


def test_abort_returns_the_steps_not_made():
    b = make_board()
    s = b.stepper
    for _ in range(6):
        s.step(50)  # 4 blocks in the PIO, 2 in the backlog
    W.advance_ms(101)
    made = pin(pico_config.STEP_PIN).rises
    assert 38 <= made <= 42, made
    left = s.abort()
    assert made + left == 300, (made, left)
    assert not s.busy()
    assert pin(pico_config.STEP_PIN).level == 0
    W.advance_ms(1000)
    assert pin(pico_config.STEP_PIN).rises == made, "steps after abort"
    s.step(7)  # and the stepper still works
    W.advance_ms(100)
    assert pin(pico_config.STEP_PIN).rises == made + 7
    assert not s.busy()


def test_abort_mid_pulse_counts_the_step_already_raised():
    b = make_board()
    s = b.stepper
    s.step(10)
    # Stop inside a high phase: 3 steps of 2.5 ms are done and the 4th is high.
    W.advance_us(3 * 2500 + 600)
    assert pin(pico_config.STEP_PIN).level == 1
    left = s.abort()
    assert pin(pico_config.STEP_PIN).rises == 4
    assert left == 6
    assert pin(pico_config.STEP_PIN).level == 0


def test_abort_when_idle_returns_zero():
    b = make_board()
    assert b.stepper.abort() == 0
    b.stepper.step(5)
    W.advance_ms(50)
    assert b.stepper.abort() == 0


def test_step_counter_is_rebased_when_idle():
    b = make_board()
    s = b.stepper
    s.rebase_steps = 50
    s.step(60)
    W.advance_ms(200)
    assert not s.busy()
    assert s._steps_put == 0, "idle past the threshold: the count restarts"
    s.step(20)
    W.advance_ms(20)
    left = s.abort()
    assert pin(pico_config.STEP_PIN).rises == 60 + 20 - left
    assert 0 < left < 20


# ---- ULN2003 stepper --------------------------------------------------------------------------

def _coils(cfg):
    bits = 0
    for i, g in enumerate(cfg.ULN2003_PINS):
        bits |= W.pin(g).level << i
    return bits


def test_uln2003_half_steps_through_the_8_phases_one_coil_at_a_time():
    b = make_board(DRIVER="uln2003", STEPS_PER_STROKE=512, STEP_RATE_HZ=500)
    cfg = b.config
    s = b.stepper
    assert _coils(cfg) == 0, "coils start released"
    s.enable(True)
    seen = [_coils(cfg)]
    s.step(16)
    while s.busy():
        W.advance_ms(2)  # one half-step at 500 Hz
        if _coils(cfg) != seen[-1]:
            seen.append(_coils(cfg))
    assert len(seen) == 17, seen
    phases = uln2003._PHASES
    start = phases.index(seen[0])
    assert seen == [phases[(start + i) % 8] for i in range(17)]
    for a, c in zip(seen, seen[1:]):
        diff = a ^ c
        assert diff and not diff & (diff - 1), "more than one coil changed"
    s.direction(False)
    s.step(3)
    W.advance_ms(20)
    assert _coils(cfg) == phases[(start + 16 - 3) % 8]
    s.enable(False)
    assert _coils(cfg) == 0


def test_uln2003_busy_abort_and_timer_stop():
    b = make_board(DRIVER="uln2003", STEP_RATE_HZ=500)
    s = b.stepper
    s.enable(True)
    s.step(100)
    W.advance_ms(41)  # 20 half-steps at 500 Hz
    assert s.busy()
    left = s.abort()
    assert left == 80, left
    W.advance_ms(20)
    assert not s.busy()
    assert W.timers == [], "the timer stops when nothing is queued"
    s.step(5)
    W.advance_ms(30)
    assert not s.busy()


# ---- rotor sensor -----------------------------------------------------------------------------

def test_rotor_counts_pulses_and_take_resets():
    b = make_board()
    W.pulse(pico_config.ROTOR_PIN, 5)
    W.advance_ms(10)
    assert b.rotor.take() == 5
    assert b.rotor.take() == 0
    W.pulse(pico_config.ROTOR_PIN, 2)
    W.advance_ms(10)
    assert b.rotor.take() == 2


def test_rotor_ignores_bounce_inside_the_debounce_time():
    b = make_board()
    g = pico_config.ROTOR_PIN
    W.drive(g, 0)
    W.drive(g, 1)
    W.advance_us(300)
    W.drive(g, 0)  # bounce, 0.3 ms after the first edge
    W.drive(g, 1)
    W.advance_us(pico_config.ROTOR_DEBOUNCE_US)
    W.drive(g, 0)  # a real pulse
    assert b.rotor.take() == 2


def test_rotor_take_is_a_critical_section():
    b = make_board()
    W.pulse(pico_config.ROTOR_PIN, 3)
    W.advance_ms(10)
    g = pico_config.ROTOR_PIN

    def pulse_inside():
        W.on_disable_irq = None
        W.drive(g, 0)  # arrives while take() has IRQs off: held until enable_irq
        W.drive(g, 1)

    W.on_disable_irq = pulse_inside
    disables = W.irq_disables
    assert b.rotor.take() == 3
    assert W.irq_disables == disables + 1
    assert W.irq_enabled
    assert b.rotor.take() == 1, "a pulse during take() was lost"


def test_rotor_irq_handler_allocates_nothing():
    # Only the unix port can lock the heap; on CPython this test has nothing to prove.
    try:
        from micropython import heap_lock, heap_unlock
    except ImportError:
        return
    b = make_board()
    handler = b.rotor.handler  # the very object registered with Pin.irq
    p = machine.Pin(pico_config.ROTOR_PIN)
    for i in range(3):
        W.advance_ms(5)
        heap_lock()
        try:
            handler(p)
        finally:
            heap_unlock()
    assert b.rotor.take() == 3


def test_uln2003_timer_callback_allocates_nothing():
    try:
        from micropython import heap_lock, heap_unlock
    except ImportError:
        return
    b = make_board(DRIVER="uln2003", STEP_RATE_HZ=500)
    s = b.stepper
    s.enable(True)
    s.step(3)
    cb = s._tick_cb
    t = s._timer
    for _ in range(4):  # 3 steps, then the call that finds nothing queued and stops
        heap_lock()
        try:
            cb(t)
        finally:
            heap_unlock()
    assert not s.busy()


# ---- analogue inputs --------------------------------------------------------------------------

def test_pressure_is_the_raw_adc0_reading():
    b = make_board()
    for raw in (0, pico_config.PRESSURE_ZERO_RAW, 40000, 65535):
        W.adc[0] = raw
        assert b.pressure.read_raw() == raw


def test_pressure_calibration_follows_the_divider():
    # 0.5 V and 4.5 V through x2/3 on a 3.3 V reference
    assert pico_config.PRESSURE_ZERO_RAW == 6619
    assert pico_config.PRESSURE_ZERO_RAW + 4 * pico_config.PRESSURE_RAW_PER_BAR == 59575


def test_battery_mv_is_vsys_through_the_3_to_1_divider():
    b = make_board()
    for vsys_mv in (0, 3000, 4800, 5000, 5500):
        W.adc[3] = vsys_mv * 65535 // (3 * 3300)  # what ADC3 reads for that VSYS
        mv = b.battery.read_mv()
        assert type(mv) is int
        assert vsys_mv - 1 <= mv <= vsys_mv, (vsys_mv, mv)
    W.adc[3] = 65535
    assert b.battery.read_mv() == 9900  # full scale: 3.3 V x 3


# ---- watchdog ---------------------------------------------------------------------------------

def _watchdog_after(cause, scratch4):
    W.reset(START_MS)
    W.reset_cause = cause
    W.mem[pico_config.WATCHDOG_SCRATCH4_ADDR] = scratch4
    return Board(Config(), link=FakeLink(), storage=FsStorage(scratch_dir("wdt")),
                 clock=W.clock).watchdog


def test_watchdog_reset_is_reported_only_after_a_watchdog_timeout():
    magic = pico_config.WATCHDOG_ENABLE_MAGIC
    assert _watchdog_after(machine.WDT_RESET, magic).caused_reset()
    assert not _watchdog_after(machine.PWRON_RESET, 0).caused_reset()
    # machine.reset(), mpremote reset and picotool reboot through the watchdog too
    assert not _watchdog_after(machine.WDT_RESET, 0).caused_reset()


def test_watchdog_start_and_feed():
    b = make_board()
    wd = b.watchdog
    wd.feed()  # before start: nothing to feed, no error
    assert W.wdt is None
    raises(ValueError, wd.start, 9000)  # the RP2040 cannot count that long
    wd.start(8000)
    assert W.wdt.timeout_ms == 8000
    W.advance_ms(7000)
    wd.feed()
    W.advance_ms(7000)
    assert not W.wdt.expired
    W.advance_ms(1500)
    assert W.wdt.expired


# ---- annunciator ------------------------------------------------------------------------------

def _play(b, slots, slot_ms=125):
    # LED and tone state in the middle of each slot
    led, tone = [], []
    gpio = pico_config.BUZZER_PIN
    t = b.ticks_ms()
    for i in range(slots):
        b.annunciator.tick((t + i * slot_ms + slot_ms // 2) & ((1 << 30) - 1))
        led.append(W.pin(25).level)
        tone.append(1 if W.pwm[gpio].duty else 0)
    return led, tone


def _bits(pattern, n):
    return [pattern >> (i % 16) & 1 for i in range(n)]


def test_annunciator_plays_16_slot_patterns_on_led_and_buzzer():
    b = make_board()
    pwm = W.pwm[pico_config.BUZZER_PIN]
    assert pwm.freq_hz == pico_config.BUZZER_HZ and pwm.duty == 0
    b.annunciator.set(0x00FF, 0x0505)
    led, tone = _play(b, 40)  # two and a half cycles
    assert led == _bits(0x00FF, 40)
    assert tone == _bits(0x0505, 40)
    assert pwm.freq_hz == pico_config.BUZZER_HZ
    b.annunciator.set(0, 0)
    led, tone = _play(b, 16)
    assert led == [0] * 16 and tone == [0] * 16
    b.annunciator.set(0xFFFF, 0)
    led, tone = _play(b, 16)
    assert led == [1] * 16


def test_annunciator_new_pattern_starts_at_slot_0_across_the_tick_wrap():
    b = make_board()
    W.advance_ms(2900)  # 100 ms before ticks wrap
    b.annunciator.tick(b.ticks_ms())
    b.annunciator.set(0x0001, 0)
    led, _ = _play(b, 20)
    assert led == _bits(0x0001, 20)


# ---- wait -------------------------------------------------------------------------------------

def test_wait_returns_when_link_input_arrives():
    b = make_board()
    t0 = W.now_us
    b.link.arrivals.append((t0 + 30000, b"\x00frame"))
    b.wait(400)
    assert W.now_us - t0 == 30000
    assert b.link.read() == b"\x00frame"


def test_wait_sleeps_the_full_timeout_without_input_but_never_past_wait_max():
    b = make_board()
    t0 = W.now_us
    b.wait(300)
    assert W.now_us - t0 == 300000
    t0 = W.now_us
    b.wait(3600000)
    assert W.now_us - t0 == pico_config.WAIT_MAX_MS * 1000
    t0 = W.now_us
    b.wait(0)
    assert W.now_us == t0


def test_wait_counts_rotor_pulses_without_waking():
    # the IRQ counts the pulse while the loop sleeps; the core asks for a pass when it
    # wants to check strokes (docs/hal.md), so a pulse does not end the wait
    b = make_board()
    g = pico_config.ROTOR_PIN

    def pulse(timer):
        W.drive(g, 0)
        W.drive(g, 1)

    machine.Timer(-1, mode=machine.Timer.ONE_SHOT, period=50, callback=pulse)
    t0 = W.now_us
    b.wait(400)
    assert W.now_us - t0 == 400000
    assert b.rotor.take() == 1


def test_wait_keeps_the_annunciator_going():
    b = make_board()
    b.annunciator.set(0x5555, 0)  # on/off every 125 ms
    b.annunciator.tick(b.ticks_ms())
    led = W.pin(25)
    rises = led.rises
    b.wait(500)
    assert led.rises - rises == 2, led.rises - rises


def test_a_quiet_wait_is_one_sleep_and_a_pattern_wakes_only_at_its_slot_edges():
    # Nothing to show: the whole wait is one sleep (one WFE on the Pico: no CPU, and an
    # emulator skips it). With a pattern the LED changes exactly on its 125 ms slot edges.
    b = make_board()
    sleeps = []
    wait = b.link.wait

    def counting(ms):
        sleeps.append(ms)
        return wait(ms)
    b._link_wait = counting
    b.wait(500)
    assert sleeps == [500], sleeps
    del sleeps[:]
    led = W.pin(25)
    edges = []
    led.listeners.append(lambda gpio, level: edges.append(W.now_us))
    b.annunciator.set(0x0001, 0)  # 125 ms on, then off for the rest of the 2 s cycle
    t0 = W.now_us
    b.wait(500)
    assert [e - t0 for e in edges] == [0, 125000], edges
    assert sleeps == [125, 125, 125, 125], sleeps


# ---- entry point ------------------------------------------------------------------------------

class _Calls:
    def __init__(self):
        self.calls = []

    def __call__(self, arg):
        self.calls.append(arg)


def test_service_pin_held_at_boot_returns_to_the_repl():
    W.reset(START_MS)
    W.drive(pico_config.SERVICE_PIN, 0)
    kbd = _Calls()
    built = _Calls()
    saved = pico_run.kbd_intr
    pico_run.kbd_intr = kbd
    try:
        result = pico_run.main(make_board=lambda: built(1), clock=W.clock)
    finally:
        pico_run.kbd_intr = saved
    assert result is None
    assert built.calls == [] and kbd.calls == []
    assert W.wdt is None, "service mode must not arm the watchdog"


def test_main_runs_the_pump_with_ctrl_c_disabled():
    b = make_board()
    kbd = _Calls()
    passes = [0]

    def keep_going():
        passes[0] += 1
        assert kbd.calls == [-1], "Ctrl-C must be off while the pump runs"
        return passes[0] <= 3

    saved = pico_run.kbd_intr
    pico_run.kbd_intr = kbd
    try:
        a = pico_run.main(make_board=lambda: b, keep_going=keep_going, clock=W.clock)
    finally:
        pico_run.kbd_intr = saved
    assert a.iterations == 3
    assert kbd.calls == [-1, 3]
    assert W.wdt is not None and W.wdt.feeds >= 3
    assert b.storage.read("state") is not None


def test_a_glitch_on_the_service_pin_does_not_skip_therapy():
    W.reset(START_MS)
    g = pico_config.SERVICE_PIN
    W.drive(g, 0)
    machine.Timer(-1, mode=machine.Timer.ONE_SHOT, period=7, callback=lambda t: W.drive(g, 1))
    assert not pico_run.service_mode(pico_config, W.clock)

