"""python -m tools.accuracy {balance,pump,sim}: flow accuracy as a table and a PNG.

    python -m tools.accuracy balance LOG.csv --rate 0.4mL/day [--temp-c 21.5] [--start 2m]
                                     [--evaporation-mg-per-h 0.03 | --blank BLANK.csv] [--stroke-nl 250]
    python -m tools.accuracy pump run.jsonl [--run N] [--start 1h]
    python -m tools.accuracy pump pump-log.csv --stroke-nl 250 --duration 3d
    python -m tools.accuracy sim [--program baclofen:500:200] [--duration 3d] [--seed 1]
                                 [--resolution-mg 0.01 --noise-mg 0.015 --evaporation-mg-per-h 0.02 | --ideal]
                                 [--true-stroke-nl 260] [--unprimed-ul 5]
                                 [--write-balance LOG.csv] [--write-pump-log run.jsonl]

Every form takes -o FILE.png (the picture), --json (one JSON object instead of the
table) and --size WxH. Exit status 0, or 2 with one line on stderr saying what is wrong
with the input. docs/bench.md describes the bench, the formats and how to read the output.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

from tools.accuracy import (AccuracyError, balance, from_balance, from_pump_log, from_sim, parse_duration,
                            parse_program, parse_rate)
from tools.accuracy import report


def _positive_int(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a whole number" % text) from None
    if v <= 0:
        raise argparse.ArgumentTypeError("must be above 0")
    return v


def _float(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number" % text) from None


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tools.accuracy",
                                 description="Flow accuracy as IEC 60601-2-24 judges volumetric pumps: start-up "
                                             "curve, trumpet curve, mean error (docs/bench.md).")
    sub = ap.add_subparsers(dest="source", required=True, metavar="{balance,pump,sim}")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("-o", "--output", metavar="PNG", help="also draw the curves into this PNG")
        p.add_argument("--json", action="store_true", help="one JSON object on stdout instead of the tables")
        p.add_argument("--size", metavar="WxH", default="%dx%d" % (report.WIDTH_PX, report.HEIGHT_PX),
                       help="the PNG's size in pixels (default %(default)s)")

    b = sub.add_parser("balance", help="a balance's log (CSV of time and mass)")
    b.add_argument("log", metavar="LOG.csv", help="seconds,grams or timestamp,grams (docs/bench.md)")
    b.add_argument("--rate", required=True, help="the set rate, e.g. 0.4mL/day, 16.667uL/h")
    b.add_argument("--temp-c", type=_float, default=balance.BENCH_TEMP_C,
                   help="water temperature in C for its density (default %(default)s)")
    b.add_argument("--start", default="0s", help="when the infusion started: after the log's first reading "
                                                 "(90s, 2m), or on its clock (10:02:30, 2024-05-01T10:02:30); "
                                                 "default: at the first reading")
    evap = b.add_mutually_exclusive_group()
    evap.add_argument("--evaporation-mg-per-h", type=_float, default=0.0,
                      help="mass the container loses per hour, added back (default 0)")
    evap.add_argument("--blank", metavar="BLANK.csv", help="a balance log of the container alone: its loss "
                                                           "per hour is the evaporation")
    b.add_argument("--stroke-nl", type=_float, help="the pump's stroke volume: shows one stroke beside each window")
    b.add_argument("--air-kg-m3", type=_float, default=balance.AIR_KG_M3,
                   help="air density for the buoyancy correction (default %(default)s, OIML R 111-1)")
    common(b)

    p = sub.add_parser("pump", help="the pump's own log: `console watch --json` output or a `log export`")
    p.add_argument("log", metavar="LOG", help="JSON lines (watch --json, log export) or a CSV log export")
    p.add_argument("--run", type=_positive_int, help="which run of the pump, when it restarted (1 = first)")
    p.add_argument("--start", help="when the infusion started, pump time since power-up (e.g. 1h; default: "
                                   "when it first ran)")
    p.add_argument("--stroke-nl", type=_positive_int, help="the stroke volume (needed for an event log alone)")
    p.add_argument("--duration", help="how long the run went on after the start (needed for an event log alone)")
    common(p)

    s = sub.add_parser("sim", help="the simulated Pico weighed by a modelled balance")
    s.add_argument("--program", default="baclofen:500:200", help="DRUG:CONC_UG_PER_ML:DOSE_UG_PER_DAY "
                                                                 "(default %(default)s: 0.4 mL/day)")
    s.add_argument("--duration", default="3d", help="how long to run (default %(default)s; 2h is the "
                                                    "standard's, the 1/6/24 h windows need more than 25h)")
    s.add_argument("--seed", type=int, default=1, help="seed of the simulation and of the balance's noise")
    s.add_argument("--ideal", action="store_true", help="an ideal balance: no resolution, noise or evaporation")
    s.add_argument("--resolution-mg", type=_float, default=0.01, help="balance resolution (default %(default)s)")
    s.add_argument("--noise-mg", type=_float, default=0.015, help="balance noise, 1 sd (default %(default)s)")
    s.add_argument("--evaporation-mg-per-h", type=_float, default=0.02,
                   help="evaporation from the container (default %(default)s)")
    s.add_argument("--temp-c", type=_float, default=balance.BENCH_TEMP_C, help="water temperature (default %(default)s)")
    s.add_argument("--true-stroke-nl", type=_positive_int, help="the head's true stroke, when it differs from "
                                                                "its calibration (STROKE_NL)")
    s.add_argument("--unprimed-ul", type=_float, default=0.0, help="outlet tubing left unprimed: this much "
                                                                   "fills it before water reaches the balance")
    s.add_argument("--write-balance", metavar="CSV", help="also write the modelled balance's log")
    s.add_argument("--write-pump-log", metavar="JSONL", help="also write the pump's frames, as `console watch --json`")
    common(s)
    return ap


def _size(ap: argparse.ArgumentParser, text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
        if not (300 <= w <= 10000 and 300 <= h <= 10000):
            raise ValueError
    except ValueError:
        ap.error("--size: give WIDTHxHEIGHT in pixels, 300..10000 each")
    return w, h


def main(argv: list[str] | None = None) -> int:
    ap = _parser()
    opts = ap.parse_args(argv)
    width, height = _size(ap, opts.size)
    try:
        if opts.source == "balance":
            result = from_balance(opts.log, parse_rate(opts.rate), opts.temp_c, opts.start,
                                  opts.evaporation_mg_per_h, opts.blank, opts.stroke_nl, opts.air_kg_m3)
        elif opts.source == "pump":
            result = from_pump_log(opts.log, opts.run, opts.stroke_nl,
                                   None if opts.start is None else float(parse_duration(opts.start)),
                                   None if opts.duration is None else float(parse_duration(opts.duration)))
        else:
            drug, conc, dose = parse_program(opts.program)
            duration = parse_duration(opts.duration)
            if opts.unprimed_ul < 0:
                raise AccuracyError("--unprimed-ul must be 0 or more")
            model = None if opts.ideal else balance.Model(opts.resolution_mg, opts.noise_mg,
                                                          opts.evaporation_mg_per_h, opts.temp_c, seed=opts.seed)
            result = from_sim(conc, dose, int(duration), opts.seed, model, opts.true_stroke_nl,
                              round(opts.unprimed_ul * 1000), opts.write_balance, opts.write_pump_log, drug)
        if opts.json:
            print(json.dumps(report.as_json(result), sort_keys=True))
        else:
            sys.stdout.write(report.text(result))
        if opts.output:
            report.render_png(result, opts.output, width, height)
            if not opts.json:
                print("Picture: %s" % opts.output)
    except AccuracyError as e:
        print("accuracy: %s" % e, file=sys.stderr)
        return 2
    except BrokenPipeError:
        # the reader went away (| head): nothing left to say, and nothing to flush into
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as e:
        print("accuracy: %s" % e, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
