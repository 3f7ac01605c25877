# Fault injection on the simulated Pico (boards/sim/faults.py): faults begin and end at
# their virtual times, do to the head, the sensors and the supply what docs/simulator.md
# says, and a seeded schedule is the same schedule on CPython and on the unix port.
from boards.sim import Board, WatchdogReset, config
from boards.sim import faults as fmod
from boards.sim.rng import Rng
from boards.stdiolink import NullLink
from check import raises, scratch_dir

STROKE_MS = config.STEPS_PER_STROKE * 1000 // config.STEP_RATE_HZ  # 160
HOUR_MS = 3600000


def _board(tag, seed=1):
    b = Board(scratch_dir(tag), NullLink(), seed=seed)
    b.head.reservoir_nl = 10000000
    b.head.enable(True)
    return b


def _strokes(b, n, period_ms=320):
    # n strokes, one every period_ms; returns the rotor pulses of each, in order
    out = []
    for _ in range(n):
        b.head.step(config.STEPS_PER_STROKE)
        b.wait(period_ms)
        out.append(b.rotor.take())
    return out


def test_a_fault_starts_and_ends_at_its_virtual_times():
    b = _board("times")
    b.faults.add("stall", 10000, 20000)
    for t, active in ((9999, False), (10000, True), (19999, True), (20000, False)):
        b.wait(t - b.clock.ms)
        assert b.faults.active("stall") == active, t
        assert b.head.rotor_faults.stalled == active, t


def test_strokes_that_complete_inside_a_stall_give_no_pulse_and_no_fluid():
    b = _board("stall")
    b.faults.add("stall", 10000, 20000)
    line = b.line
    strokes = 0
    stalled_strokes = 0
    while b.clock.ms < 30000:
        done_at = b.clock.ms + STROKE_MS  # when this stroke's steps are all out
        pumped = line.pumped_nl
        reservoir = b.head.reservoir_nl
        pulses = _strokes(b, 1)[0]
        stalled = 10000 <= done_at < 20000
        assert pulses == (0 if stalled else 1), done_at
        assert line.pumped_nl - pumped == (0 if stalled else config.STROKE_NL), done_at
        assert reservoir - b.head.reservoir_nl == line.pumped_nl - pumped
        strokes += 1
        stalled_strokes += stalled
    assert stalled_strokes == 31 and b.head.rotor_faults.strokes_stalled == 31  # 320 ms apart over 10 s
    assert b.head.strokes_made + b.head.rotor_faults.strokes_stalled == strokes


def test_a_stalled_motor_still_takes_its_steps_in_the_same_time():
    # the driver outputs the steps (busy, then idle, as ever); only the rotor stays put
    b = _board("stall-steps")
    b.faults.add("stall", 0)
    b.head.step(10 * config.STEPS_PER_STROKE)
    b.wait(10 * STROKE_MS - 1)
    assert b.head.busy()
    b.wait(1)
    assert not b.head.busy()
    assert b.head.rotor_faults.strokes_stalled == 10 and b.head.strokes_made == 0 and b.rotor.take() == 0


def test_missed_pulses_move_fluid_but_the_sensor_stays_silent():
    b = _board("missed-all")
    b.faults.add("missed_pulses", 0, percent=100)
    assert _strokes(b, 40) == [0] * 40
    assert b.line.pumped_nl == 40 * config.STROKE_NL
    assert b.head.strokes_made == 40 and b.head.rotor_faults.pulses_missed == 40


def test_missed_pulses_drop_about_their_share_the_same_way_every_time():
    counts = []
    for tag in ("missed-a", "missed-b"):
        b = _board(tag)
        b.faults.add("missed_pulses", 0, percent=25)
        pulses = _strokes(b, 400)
        assert b.line.pumped_nl == 400 * config.STROKE_NL
        assert sum(pulses) + b.head.rotor_faults.pulses_missed == 400
        counts.append(pulses)
    assert counts[0] == counts[1]  # same seed, same pulses
    missed = 400 - sum(counts[0])
    assert 60 < missed < 140, missed


def test_a_discharging_battery_reaches_low_and_end_on_time():
    b = _board("battery")
    assert abs(b.battery.read_mv() - 4800) <= 8  # on USB
    b.faults.add("battery_discharge", HOUR_MS, 20 * HOUR_MS)  # 4.2 V, -100 mV/h, 3.0 V floor
    b.wait(HOUR_MS)
    truth = b.battery.true_mv
    for hour, mv in ((1, 4200), (8, 3500), (10, 3300), (13, 3000), (19, 3000)):
        assert truth(hour * HOUR_MS) == mv, hour
    first_below = {}
    while b.clock.ms < 20 * HOUR_MS - 60000:
        b.wait(60000)
        read = b.battery.read_mv()
        assert abs(read - truth(b.clock.ms)) <= 8, b.clock.ms
        for level in (3500, 3300):
            if read < level and level not in first_below:
                first_below[level] = b.clock.ms
    # 3.5 V is due 7 h after the start, 3.3 V after 9 h: the noise moves it minutes
    assert abs(first_below[3500] - 8 * HOUR_MS) <= 10 * 60000, first_below
    assert abs(first_below[3300] - 10 * HOUR_MS) <= 10 * 60000, first_below
    b.wait(60000)
    assert abs(b.battery.read_mv() - 4800) <= 8  # USB is back


def test_a_watchdog_reset_ends_the_wait_at_its_time_and_is_seen_at_the_next_boot():
    b = _board("watchdog")
    b.faults.add("watchdog_reset", 5000)
    b.head.step(100 * config.STEPS_PER_STROKE)
    assert not b.watchdog.caused_reset()
    e = raises(WatchdogReset, b.wait, 60000)
    assert "5000" in str(e)
    assert b.clock.ms == 5000
    assert b.watchdog.caused_reset()
    assert not b.head.busy() and not b.head.enabled  # the step generator stopped
    assert b.head.strokes_made == 5000 // STROKE_MS
    assert b.ticks_ms() == config.START_TICKS  # a fresh boot's clock
    b.wait(1000)  # and the board carries on
    assert b.clock.ms == 6000


def test_a_fault_set_for_a_time_already_past_starts_now():
    b = _board("late")
    b.wait(50000)
    f = b.faults.add("occlusion", 10000, 90000)
    assert b.faults.active("occlusion") and f.on_ms == 50000
    assert b.line.half_life_ms == 0
    b.wait(40000)
    assert not b.faults.active("occlusion")
    assert b.faults.active_kinds() == []


def test_overlapping_faults_combine_and_unwind():
    b = _board("overlap")
    b.faults.add("partial_occlusion", 0, 30000, half_life_s=60)
    b.faults.add("occlusion", 10000, 20000)
    b.faults.add("sensor_noisy", 5000, 25000, lsb=50)
    b.faults.add("sensor_noisy", 15000, 35000, lsb=100)
    expect = ((0, 60000, 3), (10000, 0, 50), (15000, 0, 100), (20000, 60000, 100), (30000, 6, 100), (35000, 6, 3))
    for t, half_life_ms, noise in expect:
        b.wait(t - b.clock.ms)
        assert (b.line.half_life_ms, b.pressure.noise_lsb) == (half_life_ms, noise), t


def test_fault_specs_parse_check_and_round_trip():
    assert fmod.parse_spec("occlusion:2:3") == ("occlusion", 2 * HOUR_MS, 3 * HOUR_MS, {})
    assert fmod.parse_spec("partial_occlusion:1.5:150m:half_life_s=300") == (
        "partial_occlusion", 5400000, 9000000, {"half_life_s": 300})
    assert fmod.parse_spec("sensor_disconnected:1d:rail=high") == (
        "sensor_disconnected", 86400000, None, {"rail": "high"})
    assert fmod.parse_spec("watchdog_reset:500ms") == ("watchdog_reset", 500, None, {})
    assert fmod.parse_spec("sensor_stuck:30s:45s:raw=-1")[1:3] == (30000, 45000)
    for bad in ("leak:1", "occlusion", "occlusion:3:2", "stall:1:2:torque=1", "missed_pulses:1:2:percent=200",
                "occlusion:soon", "sensor_disconnected:1:rail=middle", "stall:1:a=1:2"):
        raises(ValueError, fmod.parse_spec, bad)
    b = _board("specs")
    for f in b.faults.random(Rng(5), 10, 30):
        kind, start_ms, end_ms, params = fmod.parse_spec(f.spec())
        again = fmod.make(kind, start_ms, end_ms, params)
        assert (again.kind, again.start_ms, again.end_ms, again.params) == (f.kind, f.start_ms, f.end_ms, f.params)


def test_random_faults_are_the_same_schedule_for_the_same_seed_on_either_runtime():
    def schedule(seed, tag):
        return [f.spec() for f in _board(tag).faults.random(Rng(seed), 30, 8)]
    seven = schedule(7, "random-a")
    assert seven == schedule(7, "random-b")
    assert seven != schedule(8, "random-c")
    # literal: CPython and MicroPython must both draw exactly this
    assert seven == [
        "sensor_disconnected:19351m:19427m",
        "sensor_noisy:26512m:26928m:lsb=206",
        "sensor_noisy:3592m:4081m:lsb=126",
        "occlusion:9073m:9357m",
        "sensor_disconnected:21039m:21815m:rail=high",
        "stall:3455m:58h",
        "battery_discharge:42494m:42797m:mv_per_h=55",
        "missed_pulses:5375m:5992m:percent=14",
    ], seven
    for f in _board("random-d").faults.random(Rng(3), 30, 60):
        assert 0 <= f.start_ms < 30 * 86400000 and f.kind in fmod.KINDS
        assert (f.end_ms == -1) == (f.kind == "watchdog_reset")
        assert f.end_ms == -1 or f.end_ms > f.start_ms
