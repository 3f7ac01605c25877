# Entry point of the simulated Pico: build the board, schedule its faults, provision a
# bench program on first boot, run the shell until the requested number of simulated
# days, booting the firmware again after a watchdog reset.
import argparse
import json
import os
import sys

import app
from boards.sim import Board, WatchdogReset
from boards.stdiolink import NullLink, StdioLink
from pump.core import Pump

SAVE_PHYSICS_MS = 3600000  # simulated time between saves of the head's physical state


def parse(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("--speed", type=int, default=0, help="x real time; 0 = as fast as possible")
    ap.add_argument("--days", type=int, default=0, help="stop after this many simulated days; 0 = never")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--flash", default="sim-flash", help="host directory that stands for the Pico's flash")
    ap.add_argument("--status-ms", type=int, default=0, help="status frame period in simulated ms")
    ap.add_argument("--program", default="", help="DRUG:CONC_UG_PER_ML:DOSE_UG_PER_DAY, used on first boot")
    ap.add_argument("--program-json", default="", help="a JSON file {program, limits, actions, clock} made on the "
                    "host from a program file (tools/programfile.py), used on first boot instead of --program")
    ap.add_argument("--fill-ml", type=int, default=20, help="reservoir fill on first boot, whole mL")
    ap.add_argument("--fill-nl", type=int, default=-1, help="reservoir fill on first boot, nL (instead of --fill-ml)")
    ap.add_argument("--link", default="stdio", help="stdio or null")
    ap.add_argument("--random-faults", type=int, default=0, help="this many faults drawn from --seed")
    # --fault KIND:START[:END][:NAME=VALUE...], repeatable: taken out by take_faults()
    # first (MicroPython's argparse has no action="append")
    return ap.parse_args(argv)


def take_faults(argv):
    # (the --fault values, the other arguments)
    specs = []
    rest = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--fault" and i + 1 < len(argv):
            specs.append(argv[i + 1])
            i += 2
            continue
        if arg.startswith("--fault="):
            specs.append(arg[len("--fault="):])
        else:
            rest.append(arg)
        i += 1
    return specs, rest


def schedule_faults(board, specs, random_count, seed, days):
    # Faults count from this run's start (virtual ms 0). Drawn ones are printed on stderr
    # in --fault form, so a run can be replayed or trimmed by hand.
    for spec in specs:
        try:
            board.faults.add_spec(spec)
        except ValueError as e:
            raise SystemExit("--fault %s: %s" % (spec, e))
    if random_count > 0:
        from boards.sim.faults import random_schedule
        for f in random_schedule(seed, days, random_count):
            board.faults.add_fault(f)
            print("sim: --fault %s" % f.spec(), file=sys.stderr)


def _mkdirs(path):
    parts = path.split("/")
    for i in range(1, len(parts) + 1):
        p = "/".join(parts[:i])
        if p:
            try:
                os.mkdir(p)
            except OSError:
                pass


def build(opts):
    _mkdirs(opts.flash)
    link = NullLink() if opts.link == "null" else StdioLink()
    board = Board(opts.flash, link, speed=opts.speed, seed=opts.seed)
    pump = Pump(app.pump_config(board.config, opts.status_ms or None))
    return app.App(board, pump)


def program_fields(spec):
    drug, conc, dose = spec.split(":")
    return {"drug": drug, "conc_ug_per_ml": int(conc), "dose_ug_per_day": int(dose)}


def reboot(a, opts):
    # After a watchdog reset: the same board, a new firmware that restores itself from
    # the flash and reads caused_reset() as True.
    board = a.board
    again = app.App(board, Pump(app.pump_config(board.config, opts.status_ms or None)))
    again.start()
    return again


def run(a, end_ms):
    # the shell's loop until end_ms (-1: for ever); raises WatchdogReset when one bites
    board = a.board
    wait = board.wait
    step = a.step
    clock = board.clock
    save_at = clock.ms + SAVE_PHYSICS_MS
    while end_ms < 0 or clock.ms < end_ms:
        w = step()
        if 0 <= end_ms < clock.ms + w:
            w = end_ms - clock.ms
        wait(w)
        if clock.ms >= save_at:
            save_at = clock.ms + SAVE_PHYSICS_MS
            board.save_physics()
    step()


def main(argv):
    specs, argv = take_faults(argv)
    opts = parse(argv)
    a = build(opts)
    board = a.board
    board.load_physics()
    schedule_faults(board, specs, opts.random_faults, opts.seed, opts.days)
    a.start()
    if (opts.program or opts.program_json) and a.pump.program is None:
        fill_nl = opts.fill_nl if opts.fill_nl >= 0 else opts.fill_ml * 1000000
        board.head.reservoir_nl = fill_nl
        if opts.program_json:
            with open(opts.program_json) as f:
                plan = json.load(f)
            reason = app.provision(a, plan["program"], fill_nl, plan.get("limits"), plan.get("clock"),
                                   plan.get("actions"))
        else:
            reason = app.provision(a, program_fields(opts.program), fill_nl)
        if reason:
            raise SystemExit("program refused: " + reason)
    board.set_speed(opts.speed)
    end_ms = opts.days * 86400000 if opts.days else -1
    try:
        while True:
            try:
                run(a, end_ms)
                return a
            except WatchdogReset:
                a = reboot(a, opts)
    finally:
        board.save_physics()
