# A therapy run measured from inside the firmware, for tools/bench_emu.py: the shell and
# core on a board (the real Pico's, on the emulated RP2040, sent through its REPL; or the
# simulated one on the unix port), a program, and a status request handed to the core
# every second as if it came over the link (or none). Prints one line, "BENCH {json}":
# - heap: with collect, gc.collect() after every pass and the largest gc.mem_alloc(),
#   the live heap the run needs (the same figure on both runtimes), and what was in use
#   before the pump's modules were imported (the REPL, this script, the board);
# - per-pass CPU time (time.ticks_us) of the passes that moved a stroke.
# Runs on MicroPython only (gc.mem_alloc, time.ticks_us); allocates freely: it is the
# measuring harness, not the pump.
import gc
import time

FILL_NL = 20000000
CLOCK = (8766, 8 * 3600000)  # 2024-01-01 08:00


def run(board, minutes, conc, dose, collect, requests=True):
    # requests: a status request every second (the heap figure); without, the pump sends
    # only its own status frames (the CPU figures)
    gc.collect()
    base = gc.mem_alloc()  # the REPL, this script and the board's modules: not the pump's
    import app
    from pump import ticks, wire
    from pump.core import Pump
    a = app.App(board, Pump(app.pump_config(board.config)))
    a.start()
    reason = app.provision(a, {"drug": "baclofen", "conc_ug_per_ml": conc, "dose_ug_per_day": dose},
                           FILL_NL, clock=CLOCK)
    assert reason is None, reason
    p = a.pump
    ticks_ms = board.ticks_ms
    diff = ticks.diff  # board ticks wrap at 2**30 on every board, as on the RP2040
    start = ticks_ms()
    next_request = start
    seq = 1
    peak = 0
    passes = stroke_passes = stroke_us = stroke_us_max = 0
    gc.collect()
    while diff(ticks_ms(), start) < minutes * 60000:
        now = ticks_ms()
        if requests and diff(now, next_request) >= 0:
            p.received(now, wire.encode(seq, {"cmd": "status"}))
            seq += 1
            next_request = ticks.add(next_request, 1000)
        before = p.basal.strokes + p.strokes_confirmed
        t0 = time.ticks_us()
        wait_ms = a.step()
        dt = time.ticks_diff(time.ticks_us(), t0)
        passes += 1
        if p.basal.strokes + p.strokes_confirmed != before:
            stroke_passes += 1
            stroke_us += dt
            if dt > stroke_us_max:
                stroke_us_max = dt
        if collect:
            gc.collect()
            used = gc.mem_alloc()
            if used > peak:
                peak = used
        to_request = diff(next_request, ticks_ms())
        if requests and to_request < wait_ms:
            wait_ms = to_request if to_request > 0 else 0
        board.wait(wait_ms)
    print("BENCH {\"passes\":%d,\"stroke_passes\":%d,\"stroke_us\":%d,\"stroke_us_max\":%d,"
          "\"peak_heap\":%d,\"strokes\":%d,\"requests\":%d,\"heap_total\":%d,\"base_heap\":%d}" % (
              passes, stroke_passes, stroke_us, stroke_us_max, peak, p.strokes_confirmed, seq - 1,
              gc.mem_alloc() + gc.mem_free(), base))
    return a


def sim_main(argv):
    # the unix port: micropython tools/bench_pump_run.py IMAGE_DIR MINUTES CONC DOSE
    import os
    import sys
    sys.path.insert(0, argv[1])
    from boards.sim import Board
    from boards.stdiolink import NullLink
    try:
        os.mkdir("bench-flash")
    except OSError:
        pass
    board = Board("bench-flash", NullLink())
    board.head.reservoir_nl = FILL_NL
    run(board, int(argv[2]), int(argv[3]), int(argv[4]), True)


if __name__ == "__main__":
    import sys
    sim_main(sys.argv)
