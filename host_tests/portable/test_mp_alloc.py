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


def _pump_running(tag, program):
    board = Board(scratch_dir(tag), NullLink())
    pump = Pump(app.pump_config(board.config, DAY_MS))
    pump.cfg.lease_nl = 1000000  # no state file inside the window (1 mL of strokes)
    a = app.App(board, pump)
    board.head.reservoir_nl = 40000000
    a.start()
    assert app.provision(a, program, 40000000) is None
    for _ in range(50):  # warm up: first strokes, caches, the first status
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
