# Entry point of the simulated Pico: build the board, provision a bench program on first
# boot, run the shell until the requested number of simulated days.
import argparse
import json
import os

import app
from boards.sim import Board
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
    ap.add_argument("--fill-ml", type=int, default=20, help="reservoir fill on first boot")
    ap.add_argument("--link", default="stdio", help="stdio or null")
    return ap.parse_args(argv)


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


def main(argv):
    opts = parse(argv)
    a = build(opts)
    board = a.board
    board.load_physics()
    a.start()
    if (opts.program or opts.program_json) and a.pump.program is None:
        fill_nl = opts.fill_ml * 1000000
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
    wait = board.wait
    step = a.step
    clock = board.clock
    save_at = clock.ms + SAVE_PHYSICS_MS
    try:
        while end_ms < 0 or clock.ms < end_ms:
            w = step()
            if 0 <= end_ms < clock.ms + w:
                w = end_ms - clock.ms
            wait(w)
            if clock.ms >= save_at:
                save_at = clock.ms + SAVE_PHYSICS_MS
                board.save_physics()
        step()
    finally:
        board.save_physics()
    return a
