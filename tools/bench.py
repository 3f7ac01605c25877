# `make bench`: the project's figures, printed (the emulated Pico's: tools/bench_emu.py).
# Speed is a property of the machine, so it is shown next to ratios that are not
# (simulated time per wall time, MicroPython vs CPython). Nothing here asserts: a figure
# off target is printed as such.
#   python -m tools.bench [--days 90] [--quick]
# --quick: 10 simulated days, and fewer seeds for the alarm figures (tools/bench_alarms.py).
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCENARIO = os.path.join(ROOT, "tools", "bench_scenario.py")
BIN = os.path.dirname(sys.executable)
MICROPYTHON = os.path.join(BIN, "micropython")

# targets from the project's issues
TARGET_MP_SECONDS_90_DAYS = 5.0
TARGET_PEAK_HEAP_BYTES = 64 * 1024
SIM_HEAP_BYTES = 256 * 1024  # the simulated Pico's heap (tools/simpico.HEAP)


def sim_image(out_dir):
    # The firmware and the sim board compiled to .mpy in the flash layout, so the
    # MicroPython figures are for bytecode loaded as on the device (no compiler peak).
    from tools import build_mpy
    return build_mpy.build_sim(out_dir)


def run_scenario(cmd, days, conc, dose, heap=None, image=None):
    # Returns the scenario's JSON result, or None if it failed (e.g. out of heap).
    argv = [cmd]
    if heap is not None:
        argv += ["-X", "heapsize=%d" % heap]
    argv += [SCENARIO, str(days), str(conc), str(dose)]
    if image:
        argv.append(image)
    with tempfile.TemporaryDirectory() as scratch:
        proc = subprocess.run(argv, cwd=scratch, capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        return None
    return json.loads(proc.stdout.strip().splitlines()[-1])


def smallest_heap(days, conc, dose, image, lo=4096, hi=SIM_HEAP_BYTES, step=1024):
    # The smallest -X heapsize the whole run completes in: the peak live heap, found by
    # bisection (each probe is a full run, so a transient peak anywhere shows).
    if run_scenario(MICROPYTHON, days, conc, dose, hi, image) is None:
        return None
    while hi - lo > step:
        mid = (lo + hi) // 2 // step * step
        if run_scenario(MICROPYTHON, days, conc, dose, mid, image) is None:
            lo = mid
        else:
            hi = mid
    return hi


def mpy_size():
    from tools import build_mpy
    with tempfile.TemporaryDirectory() as out:
        image = build_mpy.build(out)
    return sum(size for _, size in image), len(image)


def table(title, header, rows):
    print()
    print(title)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = "  ".join("%-*s" % (w, h) for w, h in zip(widths, header))
    print(line)
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join("%-*s" % (w, c) for w, c in zip(widths, row)))


def simulation_speed(days, image):
    # 1 mL/day: 500 ug/day of 500 ug/mL, refilled whenever below 2 mL
    conc, dose = 500, 500
    mp = run_scenario(MICROPYTHON, days, conc, dose, SIM_HEAP_BYTES, image)
    cp = run_scenario(sys.executable, days, conc, dose)
    rows = []
    for name, r in (("MicroPython unix port (.mpy, -X heapsize=%dk)" % (SIM_HEAP_BYTES // 1024), mp), ("CPython %d.%d" % sys.version_info[:2], cp)):
        if r is None:
            rows.append((name, "FAILED", "", "", "", ""))
            continue
        s = r["wall_ms"] / 1000.0
        rows.append((name, "%.2f s" % s, "%.1f" % (days / s), "%.0f" % (days * 86400.0 / s),
                     "%.0f" % (r["strokes"] / s), "%d" % r["strokes"]))
    table("Simulation speed: %d days at 1 mL/day (500 ug/mL, 500 ug/day), 250 nL strokes, "
          "refills below 2 mL" % days,
          ("runtime", "wall time", "sim days/s", "x real time", "strokes/s", "strokes"), rows)
    if mp and cp:
        print("MicroPython takes %.2f x the CPython time." % (mp["wall_ms"] / max(cp["wall_ms"], 1)))
        verdict = "meets" if mp["wall_ms"] / 1000.0 < TARGET_MP_SECONDS_90_DAYS * days / 90 else "MISSES"
        print("Target: 90 days in under %.0f s on MicroPython: %s (%.2f s for %d days)." % (
            TARGET_MP_SECONDS_90_DAYS, verdict, mp["wall_ms"] / 1000.0, days))
    return mp, cp


def progress(text):
    # what is being measured now, on stderr (the figures go to stdout): the whole run
    # takes minutes, and a silent terminal looks hung
    print("bench: %s ..." % text, file=sys.stderr, flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description="Print the project's performance figures.")
    ap.add_argument("--days", type=int, default=90)
    ap.add_argument("--quick", action="store_true", help="10 simulated days and fewer seeds, for a smoke run")
    opts = ap.parse_args(argv)
    days = 10 if opts.quick else opts.days
    if not os.path.exists(MICROPYTHON):
        raise SystemExit("micropython is missing from the venv: run `make bench` (it installs it)")

    with tempfile.TemporaryDirectory() as image:
        progress("compiling the firmware for the simulated Pico")
        sim_image(image)
        progress("simulation speed over %d days on MicroPython and CPython" % days)
        mp, _ = simulation_speed(days, image)
        progress("the smallest heap a %d-day run completes in (a bisection of whole runs)" % days)
        peak = smallest_heap(days, 500, 500, image)
    table("Heap on the MicroPython unix port, firmware + sim board as .mpy "
          "(8-byte pointers: the RP2040's 4-byte ones need less)",
          ("measure", "bytes", "target"),
          [("smallest -X heapsize the %d-day run completes in (1 KB steps)" % days,
            "%d" % peak if peak else "FAILED at %dk" % (SIM_HEAP_BYTES // 1024), "< %d" % TARGET_PEAK_HEAP_BYTES),
           ("live heap after the run and a gc.collect()",
            "%d" % mp["heap_after_gc"] if mp else "-", "")])

    from tools import bench_accuracy
    progress("dosing accuracy over %d days" % days)
    rows, overall = bench_accuracy.table(days)
    table("Dosing accuracy over %d simulated days: largest |delivered - programmed| in any window, "
          "in strokes (and %% of what the window programs)" % days,
          ("reference program", "commanded 1 h", "commanded 24 h", "commanded run",
           "pumped 1 h", "pumped 24 h", "pumped run"), rows)
    print("Commanded = strokes the core sent; pumped = strokes the simulated head completed "
          "(a sample may fall inside a 160 ms stroke).")
    print("Target: never more than one stroke: %s (largest %.3f strokes)." % (
        "meets" if overall <= 1 else "MISSES", float(overall)))

    from tools import bench_flow
    for title, header, rows, notes in bench_flow.tables():
        table(title, header, rows)
        for note in notes:
            print(note)

    from tools import bench_alarms
    progress("time and volume to the alarms, false alarms (several seeds)")
    t0 = time.monotonic()
    for title, header, rows, notes in bench_alarms.tables(days, quick=opts.quick):
        table(title, header, rows)
        for note in notes:
            print(note)
    print("The alarm figures took %.1f s of wall time." % (time.monotonic() - t0))

    from tools import bench_link
    progress("the status round trip over the pty and a fuzz campaign of the link")
    for title, header, rows, notes in bench_link.tables(quick=opts.quick):
        table(title, header, rows)
        for note in notes:
            print(note)

    progress("the firmware's .mpy size")
    total, files = mpy_size()
    table("Firmware image compiled with mpy-cross (what tools/deploy.py copies)",
          ("measure", "bytes"), [("%d files" % files, "%d" % total)])

    # the firmware image (make firmware) on the emulated RP2040
    from tools import bench_emu
    bench_emu.main(["--quick"] if opts.quick else [])


if __name__ == "__main__":
    main()
