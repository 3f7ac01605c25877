# On MicroPython, the pump's steady-state loop allocates nothing: every pass of a stroke
# (shell, core and the simulated board) runs without touching the heap, so the GC never
# interrupts therapy on the Pico's loop. MicroPython puts any call frame of more than 11
# words (locals plus value stack) on the heap, so this catches a hot function that grew
# too big as well as an explicit allocation. Status frames and the state file (each at
# most hourly, or every 400 strokes) do allocate; the measured window lies between them.
#
# CPython has no micropython.mem_total(): this module runs only on the unix port
# (host_tests/conftest.py keeps pytest from collecting it).
import micropython

import app
from boards.sim import Board
from boards.stdiolink import NullLink
from check import scratch_dir
from pump import ticks
from pump.core import Pump

DAY_MS = 86400000
PASSES = 200


def _pump_running(tag, program, fill_nl=40000000, then=None):
    board = Board(scratch_dir(tag), NullLink())
    pump = Pump(app.pump_config(board.config, DAY_MS))
    pump.cfg.lease_nl = 1000000  # no state file inside the window (leases of 1 mL of strokes)
    pump.cfg.lease_ms = DAY_MS
    a = app.App(board, pump)
    board.head.reservoir_nl = fill_nl
    a.start()
    assert app.provision(a, program, fill_nl) is None
    for _ in range(50):  # warm up: first strokes, caches, the first status
        board.wait(a.step())
    if then is not None:  # a therapy change (a bolus, a refill), then its own warm-up
        assert then(pump, board.ticks_ms()) is None
        a._carry_out()
        for _ in range(50):
            board.wait(a.step())
    # the hourly timers as far ahead as they go, so the window holds strokes only
    pump.housekeeping_at = ticks.add(pump.now, 3000000)
    pump.status_at = ticks.add(pump.now, 3000000)
    pump._plan_aux()
    pump._plan()
    return a, board


def _allocated_over_passes(a, board):
    step = a.step
    wait = board.wait
    before = micropython.mem_total()
    for _ in range(PASSES):
        wait(step())
    return micropython.mem_total() - before


def test_a_continuous_program_runs_without_allocating():
    # 4 mL/day: 200 strokes in 18 simulated minutes
    a, board = _pump_running("alloc-cont", {"drug": "baclofen", "conc_ug_per_ml": 500, "dose_ug_per_day": 2000})
    made = board.head.strokes_made
    assert _allocated_over_passes(a, board) == 0
    # the passes did deliver: one stroke each, but for the supply checks (every 10 min,
    # so two in the window) and the first pass
    assert board.head.strokes_made - made >= PASSES - 3


def test_the_measure_sees_an_allocation():
    # the check itself can fail: a pass that builds a list is seen
    a, board = _pump_running("alloc-probe", {"drug": "baclofen", "conc_ug_per_ml": 500, "dose_ug_per_day": 2000})
    real = a.step
    a.step = lambda: real() + len([0, 1])
    assert _allocated_over_passes(a, board) > 0


FAST = {"drug": "baclofen", "conc_ug_per_ml": 500, "dose_ug_per_day": 2000}


def test_a_low_reservoir_with_alarms_active_runs_without_allocating():
    # 1.5 mL: under the 2 mL low level from the start (reservoir_low, and clock_not_set)
    a, board = _pump_running("alloc-low", FAST, fill_nl=1500000)
    codes = [x.code for x in a.pump.alarms.active]
    assert "reservoir_low" in codes and "clock_not_set" in codes, codes
    made = board.head.strokes_made
    assert _allocated_over_passes(a, board) == 0
    assert board.head.strokes_made - made >= PASSES - 3


def test_a_bolus_runs_without_allocating():
    # 100 ug over 2 h on top of 2000 ug/day: bolus and basal strokes interleave
    a, board = _pump_running("alloc-bolus", FAST, then=lambda p, now: p.bolus_request(now, 100000, 120))
    assert a.pump.bolus is not None
    assert _allocated_over_passes(a, board) == 0
    assert a.pump.bolus is not None and a.pump.bolus.strokes_confirmed > 100


def test_a_bridge_runs_without_allocating():
    # a refill from 500 to 2000 ug/mL: 0.3 mL of the old drug leaves the line stroke by stroke
    program = dict(FAST, pump_dead_volume_nl=100000, catheter_dead_volume_nl=200000)

    def refill(p, now):
        return p.refill(now, p.reservoir.volume_nl, 20000000, 2000, 2000, True)
    a, board = _pump_running("alloc-bridge", program, then=refill)
    assert a.pump.bridge is not None
    assert _allocated_over_passes(a, board) == 0
    assert a.pump.bridge is not None  # the window lay inside the bridge


def test_a_state_write_allocates_under_2_kb():
    # a flex week with a patient bolus, a bolus running, alarms active: the counters are
    # written in place after the therapy frame (pump.record), so a write costs the heap
    # next to nothing whatever the pump is doing
    program = {"drug": "baclofen", "conc_ug_per_ml": 500,
               "profiles": {"wk": [[0, 400000], [420, 800000], [1320, 300000]], "we": [[0, 500000]]},
               "week": ["wk", "wk", "wk", "wk", "wk", "we", "we"],
               "patient_bolus": {"dose_ng": 25000, "duration_min": 10, "lockout_min": 60, "max_per_24h": 4}}

    def busy(p, now):
        return p.set_clock(now, 9000, 0) or p.set_program(now, program) or p.bolus_request(now, 100000, 120)
    a, board = _pump_running("alloc-state", FAST, fill_nl=1500000, then=busy)
    p = a.pump
    assert p.bolus is not None and p.alarms.get("reservoir_low") is not None
    p._persist()
    p.take_state()  # the first write after a therapy change encodes the therapy frame
    worst = 0
    for _ in range(20):
        board.wait(a.step())
        p._persist()
        before = micropython.mem_total()
        data = p.take_state()
        used = micropython.mem_total() - before
        worst = used if used > worst else worst
        assert len(data) > 500
    print("state write: %d bytes, at most %d allocated" % (len(data), worst))
    assert worst < 2048, worst
