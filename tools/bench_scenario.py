# A benchmark scenario run by tools/bench.py on the MicroPython unix port or on CPython:
#   <python> tools/bench_scenario.py DAYS CONC DOSE [IMAGE_DIR]
# Runs the simulated Pico as fast as possible with refills every time the reservoir
# falls below 2 mL, and prints one JSON line of results. IMAGE_DIR, if given, holds the
# firmware and boards compiled to .mpy in the Pico's flash layout (see tools/build_mpy).
import gc
import sys

_here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_root = _here.rsplit("/", 1)[0] if "/" in _here else ".."
if len(sys.argv) > 4:
    sys.path.insert(0, sys.argv[4])
else:
    sys.path.insert(0, _root)
    sys.path.insert(0, _root + "/firmware")

import app  # noqa: E402
from boards.sim import Board, host_ms, host_ms_since  # noqa: E402
from boards.stdiolink import NullLink  # noqa: E402
from pump.core import Pump  # noqa: E402

DAY_MS = 86400000
FILL_NL = 40000000
REFILL_BELOW_NL = 2000000


def main(days, conc, dose):
    try:
        import os
        os.mkdir("bench-flash")
    except OSError:
        pass
    board = Board("bench-flash", NullLink())
    a = app.App(board, Pump(app.pump_config(board.config, DAY_MS)))
    board.head.reservoir_nl = FILL_NL
    a.start()
    program = {"drug": "baclofen", "conc_ug_per_ml": conc, "dose_ug_per_day": dose}
    reason = app.provision(a, program, FILL_NL)
    assert reason is None, reason
    pump = a.pump
    clock = board.clock
    step = a.step
    wait = board.wait
    refills = 0
    strokes = 0
    live_max = 0
    next_day = DAY_MS
    gc.collect()
    t0 = host_ms()
    end = days * DAY_MS
    while clock.ms < end:
        w = step()
        if clock.ms + w > end:
            w = end - clock.ms
        wait(w)
        if clock.ms >= next_day:
            next_day += DAY_MS
            if pump.reservoir.volume_nl < REFILL_BELOW_NL:
                strokes += pump.strokes_confirmed
                board.head.reservoir_nl = FILL_NL
                assert pump.fill(board.ticks_ms(), FILL_NL, conc) is None
                refills += 1
    step()
    wall_ms = host_ms_since(t0)
    strokes += pump.strokes_confirmed
    gc.collect()
    try:
        live_max = gc.mem_alloc()
    except AttributeError:
        live_max = -1
    print('{"days":%d,"wall_ms":%d,"strokes":%d,"refills":%d,"iterations":%d,"heap_after_gc":%d,'
          '"pumped_nl":%d,"programmed_strokes":%d}' % (
              days, wall_ms, strokes, refills, a.iterations, live_max,
              board.head.pumped_nl, pump.basal.strokes))


if __name__ == "__main__":
    main(int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]))
