# The simulated Pico runs a continuous program end to end through the real shell: the
# head's physical truth, the core's accounting and the exact programmed integral agree
# over 40 days and three 2**30 ms tick wraps.
import app
from boards.sim import Board
from boards.stdiolink import NullLink
from check import scratch_dir
from pump.core import Pump

DAY_MS = 86400000
PROGRAM = {"drug": "baclofen", "conc_ug_per_ml": 2000, "dose_ug_per_day": 300}


def _sim(tag, days, program=PROGRAM, fill_nl=20000000):
    board = Board(scratch_dir(tag), NullLink(), speed=0, seed=1)
    a = app.App(board, Pump(app.pump_config(board.config, 86400000)))
    board.head.reservoir_nl = fill_nl
    a.start()
    assert app.provision(a, program, fill_nl) is None
    wraps = 0
    last = board.ticks_ms()
    end = days * DAY_MS
    while board.clock.ms < end:
        w = a.step()
        if board.clock.ms + w > end:
            w = end - board.clock.ms
        board.wait(w)
        t = board.ticks_ms()
        if t < last:
            wraps += 1
        last = t
    a.step()
    return a, wraps


def test_forty_days_across_three_tick_wraps():
    a, wraps = _sim("forty", 40)
    assert wraps >= 3
    p = a.pump
    head = a.board.head
    # 300 ug/day of 2000 ug/mL = 150 uL/day; a 250 nL stroke carries 0.5 ug: 600 a day
    assert p.basal.strokes == 600 * 40
    # every stroke the head made is confirmed (the last may still be turning)
    assert head.strokes_made - p.strokes_confirmed in (0, 1)
    assert p.strokes_confirmed >= p.basal.strokes - 1
    assert p.strokes_unconfirmed == 0
    # accounting = physics, to the nanolitre
    assert p.reservoir.delivered_nl == head.pumped_nl
    assert p.reservoir.volume_nl == head.reservoir_nl
    assert p.patient_ng == p.strokes_confirmed * 500


def test_state_and_log_reach_the_flash():
    a, _ = _sim("flash", 1)
    storage = a.board.storage
    stored = storage.read("state")
    assert stored is not None and b'"t":"therapy"' in stored and b'"t":"counters"' in stored
    log = storage.read("log")
    assert b'"ev":"program"' in log and b'"ev":"fill"' in log


def test_the_motor_is_released_between_strokes():
    a, _ = _sim("motor", 1)
    a.board.wait(5000)
    a.step()
    assert not a.board.head.enabled
