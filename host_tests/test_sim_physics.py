# The simulated line's physics checked against floating-point arithmetic (CPython only:
# the sim itself uses integers), and a clean 90-day run through the real shell whose
# pressure readings give an occlusion or sensor-fault detector no reason to fire.
import app
from boards.sim import Board, config, fluid
from boards.sim.fluid import keep_q30
from boards.stdiolink import NullLink
from pump.core import Pump

DAY_MS = 86400000


def test_the_integer_decay_follows_the_exponential():
    # linear between points 1/64 of a half-life apart: within 2e-5 of 2**(-t/h), and
    # the first 1/64 of a half-life drains within 0.6 % of the exponential's rate (to
    # the resolution of Q30)
    for h in (6, 1000, 120000, 3600000):
        for i in range(0, 16 * 640):
            dt = h * i // 640
            exact = 2.0 ** (-dt / h)
            assert abs(keep_q30(dt, h) / 2 ** 30 - exact) <= 2e-5 + 2 ** -30 * 2, (h, dt)
    h = 6400000
    for dt in (1, 10, 100, 1000, 10000, 100000):
        drained = 1 - keep_q30(dt, h) / 2 ** 30
        exact = 1 - 2.0 ** (-dt / h)
        assert abs(drained - exact) < 0.006 * exact + 2 * 2 ** -30, dt  # Q30 has its last bit


def test_the_open_line_time_constant_is_poiseuille_s():
    # R = 8 mu L / (pi r^4), C = 1.25 nL/mbar; half-life = R C ln 2, rounded to the ms
    import math
    mu_pa_s, length_m, radius_m = 1.0e-3, 1.0, 0.25e-3
    r = 8 * mu_pa_s * length_m / (math.pi * radius_m ** 4)
    c_m3_per_pa = 1000 / fluid.LINE_UBAR_PER_NL * 1e-12 / 100  # nL/mbar -> m^3/Pa
    assert round(r * c_m3_per_pa * math.log(2) * 1000) == fluid.OPEN_HALF_LIFE_MS


def test_a_clean_90_day_run_reads_like_an_open_line(tmp_path):
    # The simulator's default program (0.4 mL/day, 1600 strokes a day) through the real
    # shell and core, the pressure read at every pass of the loop as the firmware may:
    # never 100 mbar above the slowly drifting CSF baseline, never at a rail, never the
    # same value for long.
    board = Board(str(tmp_path), NullLink(), seed=1)
    a = app.App(board, Pump(app.pump_config(board.config, DAY_MS)))
    board.head.reservoir_nl = 40000000
    a.start()
    assert app.provision(a, {"drug": "baclofen", "conc_ug_per_ml": 500, "dose_ug_per_day": 200}, 40000000) is None
    read = board.pressure.read_raw
    slow = board.csf.slow_ubar
    zero, per_bar = config.PRESSURE_ZERO_RAW, config.PRESSURE_RAW_PER_BAR
    clock = board.clock
    end = 90 * DAY_MS
    worst_mbar = -1000
    last = -1
    same = longest_same = 0
    samples = 0
    while clock.ms < end:
        raw = read()
        samples += 1
        excess_mbar = (raw - zero) * 1000 // per_bar - slow(clock.ms) // 1000
        if excess_mbar > worst_mbar:
            worst_mbar = excess_mbar
        assert 655 < raw < 65535 - 655, clock.ms
        if raw == last:
            same += 1
            longest_same = max(longest_same, same)
        else:
            same = 0
            last = raw
        w = a.step()
        if board.head.reservoir_nl < 2000000:  # refill, as a clinician would
            board.head.reservoir_nl = 40000000
            assert a.pump.fill(board.ticks_ms(), 40000000, 500) is None
        board.wait(min(w, end - clock.ms))
    assert samples > 90 * 1600
    assert worst_mbar < 100, worst_mbar
    assert longest_same < 16, longest_same
    line = board.line
    assert line.pumped_nl == line.delivered_nl + line.stored_nl == board.head.pumped_nl
    assert line.backflow_nl == 0 and line.delivered_nl >= 90 * 1600 * config.STROKE_NL - config.STROKE_NL
