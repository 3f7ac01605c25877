# `make bench`, the firmware image on the emulated RP2040 (tools/emupico.py): its flash,
# the emulator's speed with and without idle skipping, the pump's CPU share and time per
# stroke pass from the chip's 125 MHz cycle count, its live heap during therapy with a
# status request every second (and the same figure for the unix-port sim), and the time
# from power-up to the first step pulse. Figures only, no assertions.
#   python -m tools.bench_emu [--quick]
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

from tools import fwinfo
from tools.emupico import DEFAULT_UF2, EmuPico

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_SCRIPT = os.path.join(ROOT, "tools", "bench_pump_run.py")
CLOCK_HZ = 125000000
SERVICE_NOTICE = "service mode: pump not started"
TARGET_HEAP_BYTES = 32 * 1024
TARGET_CPU_PERCENT_1ML = 1.0
UID = "e6614103e7b0b0b0"


def device_script():
    # bench_pump_run.py without its unix-port entry point, for the Pico's REPL
    with open(RUN_SCRIPT) as f:
        text = f.read()
    return text.split("\nif __name__ ==")[0] + "\n"


def run_on_pico(scratch, minutes, conc, dose, collect, requests):
    # One therapy run in service mode through the REPL, on a blank flash. Returns the
    # script's figures with the harness's busy cycles and emulated time over the run.
    pico = EmuPico(flash=os.path.join(scratch, "flash-%d-%d-%d.bin" % (conc, dose, collect)),
                   uid=UID, service=True)
    with pico:
        pico.wait_output(SERVICE_NOTICE)
        r = pico.repl()
        try:
            measure = "import gc\ngc.collect()\nprint('HEAP', gc.mem_alloc())\n"
            heap_before = int(r.exec(measure).split()[-1])
            r.exec(device_script(), timeout_s=60)
            script_bytes = int(r.exec(measure).split()[-1]) - heap_before  # this bench's own code
            before = pico.status()
            out = r.exec("from boards.pico import Board, config\n"
                         "run(Board(config), %d, %d, %d, %s, %s)\n" % (minutes, conc, dose, collect, requests),
                         timeout_s=600)
            after = pico.status()
        finally:
            r.close()
    line = [x for x in out.splitlines() if x.startswith("BENCH ")][-1]
    got = json.loads(line[len("BENCH "):])
    got["script_bytes"] = script_bytes
    got["busy_cycles"] = after["busy_cycles"] - before["busy_cycles"]
    got["emulated_s"] = after["emulated_s"] - before["emulated_s"]
    got["wall_s"] = after["wall_s"] - before["wall_s"]
    return got


def run_on_sim(scratch, minutes, conc, dose):
    from tools import build_mpy
    image = build_mpy.build_sim()
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    proc = subprocess.run([exe, "-X", "heapsize=256k", RUN_SCRIPT, image, str(minutes), str(conc), str(dose)],
                          cwd=scratch, capture_output=True, text=True, timeout=600)
    lines = [x for x in proc.stdout.splitlines() if x.startswith("BENCH ")]
    if not lines:
        return None
    return json.loads(lines[-1][len("BENCH "):])


def idle_speed(scratch, usb_stock, wall_s):
    # emulated seconds per wall second of a pump at rest (fresh, no program), measured
    # after its boot
    pico = EmuPico(flash=os.path.join(scratch, "idle-%d.bin" % usb_stock), uid=UID, usb_stock=usb_stock)
    with pico:
        time.sleep(1.0)
        a = pico.status()
        time.sleep(wall_s)
        b = pico.status()
    emulated = b["emulated_s"] - a["emulated_s"]
    return (emulated / (b["wall_s"] - a["wall_s"]), (b["wakeups"] - a["wakeups"]) / max(emulated, 1e-9),
            100.0 * (b["busy_cycles"] - a["busy_cycles"]) / max(emulated * CLOCK_HZ, 1))


def first_stroke(scratch):
    # power-up of a pump whose flash holds a program at the top rate: ms to the first
    # step pulse, from the chip's reset
    flash = os.path.join(scratch, "flash-50-200-0.bin")
    pico = EmuPico(flash=flash, uid=UID)
    pico.open()
    try:
        pico.launch()
        pico.control("watch", gpio=2)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            edges = pico.control("edges", gpio=2)["edges"]
            if edges:
                return pico.status()["first_serial_ns"] / 1e6, edges[0] / 1e6
            time.sleep(0.05)
        return None, None
    finally:
        pico.stop()


def table(title, rows):
    print()
    print(title)
    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print("  %-*s  %s" % (width, name, value))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="shorter runs")
    opts = ap.parse_args(argv)
    minutes = 3 if opts.quick else 6
    heap_minutes = 2 if opts.quick else 4
    mpy = os.path.join(ROOT, "build", "src", "micropython")
    t_start = time.monotonic()
    if not os.path.exists(DEFAULT_UF2):
        print("\nThe emulated Pico: %s is missing (make firmware)" % DEFAULT_UF2)
        return 1
    info = fwinfo.info(DEFAULT_UF2, mpy, "RPI_PICO")
    table("Firmware image (make firmware, MicroPython 1.28.0 for RPI_PICO with the pump frozen in)", [
        ("image in flash", "%d bytes (%.0f KB); the UF2 file is %d bytes" % (
            info["image_bytes"], info["image_bytes"] / 1024, info["uf2_bytes"])),
        ("room before the filesystem", "%.0f KB" % (info["room_bytes"] / 1024)),
        ("filesystem (LittleFS)", "%d KB of the %d KB flash" % (info["fs_bytes"] // 1024, info["flash_bytes"] // 1024)),
    ])
    pico2 = os.path.join(ROOT, "build", "firmware", "RPI_PICO2", "firmware.uf2")
    if os.path.exists(pico2):
        print("  RPI_PICO2 (not emulated): " + fwinfo.report(fwinfo.info(pico2, mpy, "RPI_PICO2")))
    scratch = tempfile.mkdtemp(prefix="bench-emu-")
    try:
        before = idle_speed(scratch, True, 3.0 if opts.quick else 6.0)
        after = idle_speed(scratch, False, 3.0 if opts.quick else 6.0)
        table("Emulator speed, a pump at rest (no program yet, an alarm pattern showing), after its boot", [
            ("rp2040js's USB host as it comes", "%.2f emulated s per wall s, %.0f wake-ups per emulated s, "
             "core busy %.1f %%" % before),
            ("reads held until the host sends", "%.2f emulated s per wall s, %.0f wake-ups per emulated s, "
             "core busy %.2f %%" % after),
        ])
        print("Why: rp2040js answers each USB OUT read at once, with an empty packet when the host has "
              "nothing; TinyUSB takes it in an interrupt and reads again 10 us later, so the core never "
              "waits long enough for the emulator to skip time. The board's wait then sleeps whole "
              "waits instead of 20 ms slices (emu/usbcdc.mjs, boards/pico/__init__.py).")
        rows = []
        figures = {}
        for label, conc, dose in (("1 mL/day (500 ug/mL, 500 ug/day)", 500, 500),
                                  ("top rate 4 mL/day (50 ug/mL, 200 ug/day)", 50, 200)):
            g = run_on_pico(scratch, minutes, conc, dose, False, False)
            figures[(conc, dose)] = g
            share = 100.0 * g["busy_cycles"] / (g["emulated_s"] * CLOCK_HZ)
            per_stroke = g["stroke_us"] / max(g["stroke_passes"], 1)
            rows.append((label, "CPU %.2f %% of 125 MHz; a pass that moves a stroke %.0f us (max %d us), "
                         "%d strokes in %.0f emulated s (%.1f emulated s per wall s)" % (
                             share, per_stroke, g["stroke_us_max"], g["strokes"],
                             g["emulated_s"], g["emulated_s"] / max(g["wall_s"], 1e-9))))
        table("The pump on the emulated RP2040 at 125 MHz, %d minutes each, its own status frame every 10 s "
              "(CPU from the chip's cycle count, pass times from time.ticks_us)" % minutes, rows)
        share_1ml = 100.0 * figures[(500, 500)]["busy_cycles"] / (figures[(500, 500)]["emulated_s"] * CLOCK_HZ)
        print("Target: under %.0f %% of the CPU at 1 mL/day: %s (%.2f %%)." % (
            TARGET_CPU_PERCENT_1ML, "met" if share_1ml < TARGET_CPU_PERCENT_1ML else "NOT met", share_1ml))
        heap = run_on_pico(scratch, heap_minutes, 500, 500, True, True)
        sim = run_on_sim(scratch, heap_minutes, 500, 500)
        table("Live heap during therapy at 1 mL/day with a status request every second (gc.collect() after "
              "every pass, largest gc.mem_alloc(); %d minutes)" % heap_minutes, [
                  ("RP2040, frozen firmware", "%d bytes (%.1f KB) of a %d-byte heap, of which %.1f KB is this "
                   "bench's own code compiled in the REPL: the pump and the board %.1f KB" % (
                       heap["peak_heap"], heap["peak_heap"] / 1024, heap["heap_total"],
                       heap["script_bytes"] / 1024, (heap["peak_heap"] - heap["script_bytes"]) / 1024)),
                  ("unix-port sim, .mpy in RAM", ("%d bytes (%.1f KB) of a %d-byte heap (8-byte pointers, "
                   "bytecode on the heap, this bench's code included); %.1f KB before the pump was imported" % (
                       sim["peak_heap"], sim["peak_heap"] / 1024, sim["heap_total"], sim["base_heap"] / 1024))
                   if sim else "the run failed"),
              ])
        pump_heap = heap["peak_heap"] - heap["script_bytes"]
        print("Target: under %d KB on the RP2040: %s (%.1f KB without the bench's code, %.1f KB with it)." % (
            TARGET_HEAP_BYTES // 1024, "met" if pump_heap < TARGET_HEAP_BYTES else "NOT met",
            pump_heap / 1024, heap["peak_heap"] / 1024))
        up_ms, stroke_ms = first_stroke(scratch)
        table("Power-up of a programmed pump at the top rate, from the chip's reset", [
            ("to its first frame on the USB serial", "%.0f ms" % up_ms if up_ms is not None else "none seen"),
            ("to its first step pulse (GP2)", "%.0f ms" % stroke_ms if stroke_ms is not None else "none seen")])
        print("The first stroke waits for the program's schedule (a stroke every 5.4 s at the top rate).")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print("The emulated-Pico figures took %.0f s of wall time." % (time.monotonic() - t_start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
