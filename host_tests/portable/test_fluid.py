# The simulated downstream line and its pressure sensor (boards/sim/fluid.py), driven the
# way the firmware drives the board: strokes through the stepper, time through wait(),
# readings through board.pressure.read_raw(). Runs on CPython and on the unix port, so
# the physics is the same on both.
from boards.sim import Board, config, fluid
from boards.sim.fluid import Line, keep_q30
from boards.sim.rng import Rng
from boards.stdiolink import NullLink
from check import scratch_dir

STROKE_MS = config.STEPS_PER_STROKE * 1000 // config.STEP_RATE_HZ  # 160
GAP_MS = STROKE_MS  # the fastest program keeps the motor busy half the time
PER_STROKE_MBAR = config.STROKE_NL * fluid.LINE_UBAR_PER_NL // 1000  # 200
# a reading is within (NOISE_LSB + 1) ADC codes of the truth, 16 counts each
NOISE_RAW = (fluid.NOISE_LSB + 1) * 16  # 64 counts, 4.9 mbar
NOISE_MBAR = NOISE_RAW * 1000 // config.PRESSURE_RAW_PER_BAR + 1  # and 1 for the core's rounding


def _board(tag, seed=1):
    b = Board(scratch_dir(tag), NullLink(), seed=seed)
    b.head.reservoir_nl = 10000000
    b.head.enable(True)
    return b


def _stroke(b, then_ms=GAP_MS):
    # one stroke, then a pause
    b.head.step(config.STEPS_PER_STROKE)
    b.wait(STROKE_MS)
    b.wait(then_ms)


def _mbar(raw):
    # as the core converts a reading
    return (raw - config.PRESSURE_ZERO_RAW) * 1000 // config.PRESSURE_RAW_PER_BAR


def _excess_mbar(b):
    # what the sensor reads above the CSF pressure at the catheter tip, now
    return _mbar(b.pressure.read_raw()) - b.csf.ubar(b.clock.ms) // 1000


def _truth_adds_up(line):
    assert line.pumped_nl == line.delivered_nl + line.stored_nl, (
        line.pumped_nl, line.delivered_nl, line.stored_nl)
    assert 0 <= line.stored_nl <= fluid.STORED_MAX_NL


def test_the_decay_table_is_exact():
    # entry k is the largest x with x**64 <= 2**(30*64 - k): floor(2**30 * 2**(-k/64))
    for k in range(65):
        lo, hi = 0, 1 << 30
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if (mid ** 64) << k <= 1 << 1920:
                lo = mid
            else:
                hi = mid - 1
        assert keep_q30(k * 1000, 64000) == lo, k


def test_the_decay_halves_per_half_life_and_never_rises():
    assert keep_q30(0, 6) == 1 << 30
    assert keep_q30(6, 6) == 1 << 29
    assert keep_q30(60, 6) == 1 << 20
    last = 1 << 30
    for dt in range(0, 96001, 7):
        k = keep_q30(dt, 6000)
        assert k <= last, dt
        last = k


def test_a_full_occlusion_adds_200_mbar_a_stroke_and_holds_it():
    b = _board("full")
    b.faults.add("occlusion", 0)
    assert abs(_excess_mbar(b)) <= NOISE_MBAR
    for n in range(1, 9):
        _stroke(b)
        assert b.line.stored_nl == n * config.STROKE_NL
        assert abs(_excess_mbar(b) - n * PER_STROKE_MBAR) <= NOISE_MBAR, n
    b.wait(3600000)  # an hour without strokes: nothing drains
    assert b.line.stored_nl == 8 * config.STROKE_NL and b.line.delivered_nl == 0
    assert abs(_excess_mbar(b) - 8 * PER_STROKE_MBAR) <= NOISE_MBAR
    _truth_adds_up(b.line)


def test_an_open_line_is_back_at_baseline_before_the_next_stroke_at_the_fastest_rate():
    b = _board("open")
    for _ in range(50):
        b.head.step(config.STEPS_PER_STROKE)
        b.wait(STROKE_MS)
        # the stroke has just landed: the line holds it and the sensor shows it...
        assert b.line.stored_nl == config.STROKE_NL
        assert abs(_excess_mbar(b) - PER_STROKE_MBAR) <= NOISE_MBAR
        b.wait(GAP_MS)
        # ...and it has reached the patient before the next stroke is commanded
        assert b.line.stored_nl == 0
        assert abs(_excess_mbar(b)) <= NOISE_MBAR
    assert b.line.delivered_nl == 50 * config.STROKE_NL
    _truth_adds_up(b.line)


def test_a_partial_occlusion_builds_at_a_high_rate_and_drains_at_a_low_rate():
    # default half-life 120 s. A bolus (a stroke every 320 ms) builds ~200 mbar a stroke.
    b = _board("partial-high")
    b.faults.add("partial_occlusion", 0)
    for _ in range(10):
        _stroke(b)
    assert 1900 <= b.line.stored_nl <= 2500
    assert _excess_mbar(b) >= 1500
    # then with no strokes it halves every half-life
    stored = b.line.stored_nl
    b.wait(120000)
    assert abs(b.line.stored_nl - stored // 2) <= 1
    b.wait(120000)
    assert abs(b.line.stored_nl - stored // 4) <= 1
    _truth_adds_up(b.line)

    # 0.15 mL/day, a stroke every 144 s: the line drains between strokes; just before a
    # stroke it settles near 200 a / (1 - a) mbar, a = 2**(-144/120): 154 mbar
    b = _board("partial-low")
    b.faults.add("partial_occlusion", 0)
    for _ in range(30):
        _stroke(b, 144000 - STROKE_MS)
        assert _excess_mbar(b) < 300
    assert 154 - 2 * NOISE_MBAR <= _excess_mbar(b) <= 154 + 2 * NOISE_MBAR

    # 1 mL/day, a stroke every 21.6 s, builds past 1 bar within 30 strokes
    b = _board("partial-mid")
    b.faults.add("partial_occlusion", 0)
    for _ in range(30):
        _stroke(b, 21600 - STROKE_MS)
    assert _excess_mbar(b) > 1000
    _truth_adds_up(b.line)


def test_the_volume_stored_in_an_occlusion_is_released_when_it_clears():
    b = _board("release")
    f = b.faults.add("occlusion", 0, 10000)
    for _ in range(12):
        _stroke(b)
    assert b.clock.ms < 10000
    stored = b.line.stored_nl
    assert stored == 12 * config.STROKE_NL and b.line.delivered_nl == 0
    b.wait(10000 - b.clock.ms)  # the occlusion ends here
    assert f.released_nl == stored
    b.wait(200)
    # the unintended bolus: everything stored reached the patient at once
    assert b.line.stored_nl == 0
    assert b.line.delivered_nl == stored == b.line.pumped_nl
    _truth_adds_up(b.line)


def test_a_blocked_line_holds_at_most_the_head_pressure_and_the_rest_stays_in_the_reservoir():
    b = _board("cap")
    b.faults.add("occlusion", 0)
    before = b.head.reservoir_nl
    for _ in range(20):
        _stroke(b)
    line = b.line
    assert line.stored_nl == fluid.STORED_MAX_NL == 3750
    assert line.backflow_nl == 20 * config.STROKE_NL - 3750
    assert b.head.pumped_nl == line.pumped_nl == 3750
    assert b.head.reservoir_nl == before - 3750
    assert b.rotor.take() == 20  # the rotor turned every time
    assert abs(_excess_mbar(b) - fluid.HEAD_MAX_EXCESS_MBAR) <= NOISE_MBAR
    _truth_adds_up(line)


def test_every_nanolitre_offered_is_stored_delivered_or_sent_back():
    # random strokes, outflow changes and looks: the line never loses or makes volume,
    # never holds more than the head can push, and never flows backwards
    rng = Rng(11)
    line = Line()
    now = 0
    offered = 0
    last_delivered = 0
    for i in range(3000):
        r = rng.below(10)
        if r < 4:
            nl = rng.below(400)
            offered += nl
            before = line.stored_at(now)
            took = line.push(nl, now)
            assert line.stored_at(now) == before + took <= fluid.STORED_MAX_NL, i
        elif r < 5:
            line.set_half_life(now, (0, fluid.OPEN_HALF_LIFE_MS, 1 + rng.below(300000))[rng.below(3)])
        stored = line.stored_at(now)
        delivered = line.delivered_at(now)
        assert 0 <= stored <= fluid.STORED_MAX_NL, i
        assert delivered >= last_delivered, i
        assert line.pumped_nl + line.backflow_nl == offered, i
        assert line.pumped_nl == delivered + stored, i
        last_delivered = delivered
        now += rng.below(20000)


def test_the_outflow_follows_the_half_life():
    line = Line()
    line.set_half_life(0, 90000)
    line.push(3000, 0)
    assert [line.stored_at(t * 90000) for t in range(5)] == [3000, 1500, 750, 375, 188]
    # after 600 s at a 90 s half-life, 3000 * 2**(-600/90) = 29.5 nL is left
    assert line.stored_at(600000) in (29, 30)
    assert line.stored_at(16 * 90000) == 0 and line.delivered_at(16 * 90000) == 3000


def test_sensor_noise_stays_within_its_bounds_and_is_never_still():
    b = _board("noise")
    seen = {}
    total = 0
    for i in range(2000):
        b.wait(997)
        ideal = b.pressure.ideal_raw(b.clock.ms)
        raw = b.pressure.read_raw()
        assert abs(raw - ideal) <= NOISE_RAW, (raw, ideal)
        seen[raw - ideal] = True
        total += raw - ideal
    assert len(seen) >= 5
    assert abs(total // 2000) <= 16  # centred: the noise has no bias beyond a code


def test_a_stuck_sensor_repeats_one_value_then_lives_again():
    b = _board("stuck")
    f = b.faults.add("sensor_stuck", 1000, 600000)
    b.wait(1000)
    held = f.stuck_raw
    assert abs(held - b.pressure.ideal_raw(b.clock.ms)) <= NOISE_RAW  # what it read then
    for _ in range(100):
        _stroke(b, 5000)
        assert b.pressure.read_raw() == held
    b.wait(600000 - b.clock.ms)
    assert len(set(b.pressure.read_raw() for _ in range(20))) > 1
    # or stuck at a value of one's choice
    b.faults.add("sensor_stuck", b.clock.ms, b.clock.ms + 1000, raw=1234)
    assert b.pressure.read_raw() == 1234


def test_a_noisy_sensor_spreads_wide_but_within_its_setting():
    b = _board("noisy")
    b.faults.add("sensor_noisy", 0, 3600000, lsb=200)
    ideal = b.pressure.ideal_raw(0)
    raws = [b.pressure.read_raw() for _ in range(500)]
    assert max(raws) - min(raws) > 3000
    assert all(abs(r - ideal) <= 201 * 16 for r in raws)
    b.wait(3600000)
    assert all(abs(b.pressure.read_raw() - b.pressure.ideal_raw(b.clock.ms)) <= NOISE_RAW for _ in range(100))


def test_a_disconnected_sensor_reads_at_a_rail():
    b = _board("rails")
    b.faults.add("sensor_disconnected", 0, 1000)
    b.faults.add("sensor_stuck", 0, 2000)  # a broken wire wins over a stuck reading
    low = [b.pressure.read_raw() for _ in range(100)]
    assert max(low) <= 32 and len(set(low)) > 1
    b.wait(2000)
    b.faults.add("sensor_disconnected", 2000, 3000, rail="high")
    high = [b.pressure.read_raw() for _ in range(100)]
    assert min(high) >= 65503 and max(high) == 65535


def test_the_csf_pressure_rests_drifts_and_coughs_within_its_stated_bounds():
    csf = Board(scratch_dir("csf"), NullLink(), seed=4).csf
    rest = csf.rest_ubar
    assert fluid.CSF_REST_MIN_UBAR <= rest <= fluid.CSF_REST_MIN_UBAR + fluid.CSF_REST_SPAN_UBAR
    end = 3 * 86400000
    levels = {}
    for t in range(0, end, 60000):
        slow = csf.slow_ubar(t)
        assert rest <= slow <= rest + fluid.POSTURE_RANGE_UBAR, t
        levels[slow // 1000] = True
    assert len(levels) >= 10  # it drifts
    # coughs, one by one: a spike of its height from its start to its end, none between
    csf = Board(scratch_dir("csf"), NullLink(), seed=4).csf
    coughs = 0
    t = 0
    while True:
        csf.ubar(t)
        start, stop, height = csf.cough_ms, csf.cough_end_ms, csf.cough_ubar
        if start >= end:
            break
        assert fluid.COUGH_GAP_MIN_MS <= start - t <= fluid.COUGH_GAP_MIN_MS + fluid.COUGH_GAP_SPAN_MS
        assert fluid.COUGH_MIN_MS <= stop - start <= fluid.COUGH_MIN_MS + fluid.COUGH_SPAN_MS
        assert fluid.COUGH_MIN_UBAR <= height <= fluid.COUGH_MIN_UBAR + fluid.COUGH_SPAN_UBAR
        for at, spike in ((start - 1, 0), (start, height), (stop - 1, height)):
            assert csf.ubar(at) - csf.slow_ubar(at) == spike, (at, spike)
        coughs += 1
        t = stop
    assert 3 * 24 // 4 <= coughs <= 3 * 24 * 6, coughs


def test_the_world_does_not_depend_on_how_often_it_is_read():
    a = Board(scratch_dir("world-a"), NullLink(), seed=9).csf
    b = Board(scratch_dir("world-b"), NullLink(), seed=9).csf
    for t in range(0, 86400000, 1000):
        x = a.ubar(t)
        if t % 3600000 == 0:
            assert b.ubar(t) == x, t


def test_the_same_seed_reads_the_same_on_either_runtime():
    # literal values: CPython and MicroPython must both produce exactly these
    b = _board("literal", seed=3)
    b.faults.add("partial_occlusion", 60000, 700000, half_life_s=90)
    raws = []
    for _ in range(6):
        _stroke(b, 99840)
        raws.append(b.pressure.read_raw())
    assert (b.csf.rest_ubar, b.line.stored_nl, b.line.delivered_nl) == (18025, 211, 1289), (
        b.csf.rest_ubar, b.line.stored_nl, b.line.delivered_nl)
    assert raws == [6769, 8017, 8530, 8834, 8978, 8978], raws


def test_reading_the_board_allocates_nothing_on_micropython():
    # the firmware reads the pressure every stroke; on the unix port, reading it and the
    # physics behind it (strokes, outflow, CSF drift, coughs, faults) must not touch the
    # heap. CPython has no heap lock: nothing to check there.
    try:
        import micropython
        lock = micropython.heap_lock
        unlock = micropython.heap_unlock
    except (ImportError, AttributeError):
        return
    b = _board("alloc")
    b.faults.add("partial_occlusion", 0, 3 * 86400000)
    b.faults.add("missed_pulses", 0, 3 * 86400000, percent=30)
    read = b.pressure.read_raw
    mv = b.battery.read_mv
    step = b.head.step
    wait = b.wait
    n = config.STEPS_PER_STROKE
    lock()
    try:
        for _ in range(3000):  # about two days, across posture points and coughs
            step(n)
            wait(STROKE_MS)
            read()
            wait(60000)
            read()
            mv()
    finally:
        unlock()
    assert b.head.strokes_made == 3000
