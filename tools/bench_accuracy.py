"""Dosing accuracy of reference programs over 90 simulated days (part of `make bench`).

Runs the firmware's shell and core on the simulated Pico (CPython, in process), samples
the pump every simulated minute, and compares with the programmed drug integrated here,
independently of the firmware, in exact integers:

- commanded: strokes the core has sent to the motor;
- pumped: strokes the simulated head has physically completed (a stroke takes 160 ms,
  so a sample can fall while one is turning).

For every window of 1 h, 24 h and the whole run starting at any sampled minute, the
deviation is (delivered in the window) - (programmed in the window), in strokes, and in
percent of what the window programs. The table shows the largest magnitude of each.
"""
import os
import sys
import tempfile
from fractions import Fraction

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (os.path.join(ROOT, "firmware"), ROOT):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import app  # noqa: E402
from boards.sim import Board  # noqa: E402
from boards.stdiolink import NullLink  # noqa: E402
from pump.core import Pump  # noqa: E402

DAY_MS = 86400000
MIN_MS = 60000
MONDAY = 2  # 2000-01-03
FILL_NL = 40000000
LIMITS = {"max_rate_ng_per_day": 3000000, "max_24h_ng": 5000000, "max_bolus_ng": 1000000}

REFERENCE = [
    ("low dose 20 ug/day at 2000 ug/mL", {"conc_ug_per_ml": 2000, "dose_ug_per_day": 20}),
    ("100 ug/day at 500 ug/mL", {"conc_ug_per_ml": 500, "dose_ug_per_day": 100}),
    ("600 ug/day at 2000 ug/mL", {"conc_ug_per_ml": 2000, "dose_ug_per_day": 600}),
    ("800 ug/day at 500 ug/mL (1.6 mL/day)", {"conc_ug_per_ml": 500, "dose_ug_per_day": 800}),
    ("day/night flex, 4 steps, 2000 ug/mL", {"conc_ug_per_ml": 2000, "profiles": {
        "d": [[0, 300000], [420, 450000], [780, 350000], [1320, 500000]]}}),
    ("weekday/weekend, 500 ug/mL", {"conc_ug_per_ml": 500, "profiles": {
        "wk": [[0, 250000], [480, 350000]], "we": [[0, 200000]]},
        "week": ["wk", "wk", "wk", "wk", "wk", "we", "we"]}),
]


def _rate(program, day, ms):
    # the programmed dose rate (ng/day) at a wall time; a continuous program has one
    if "dose_ug_per_day" in program:
        return program["dose_ug_per_day"] * 1000
    week = program.get("week") or [next(iter(program["profiles"]))] * 7
    steps = program["profiles"][week[(day + 5) % 7]]
    rate = None
    for start_min, r in steps:
        if start_min * MIN_MS <= ms:
            rate = r
    if rate is None:
        rate = program["profiles"][week[(day + 4) % 7]][-1][1]
    return rate


def run(program, days, stroke_nl=None):
    with tempfile.TemporaryDirectory() as flash:
        board = Board(flash, NullLink())
        pump = Pump(app.pump_config(board.config, DAY_MS))
        a = app.App(board, pump)
        stroke_nl = board.config.STROKE_NL
        board.head.reservoir_nl = FILL_NL
        a.start()
        now = board.ticks_ms()
        assert pump.set_limits(now, LIMITS) is None
        assert pump.set_clock(now, MONDAY, 0) is None
        assert pump.fill(now, FILL_NL, program["conc_ug_per_ml"]) is None
        fields = dict(program, drug="baclofen")
        reason = pump.set_program(now, fields)
        assert reason is None, reason
        # one stroke in progress units (ng*ms/day): stroke pg x 86400 (see pump.strokes)
        stroke_units = stroke_nl * program["conc_ug_per_ml"] * 86400
        programmed = [0]  # per sampled minute, in progress units
        commanded = [0]
        pumped = [0]
        commanded_total = 0
        integral = 0  # ng*ms/day programmed so far, exact
        clock = board.clock
        for minute in range(1, days * 1440 + 1):
            end = minute * MIN_MS
            while clock.ms < end:
                w = a.step()
                if clock.ms + w > end:
                    w = end - clock.ms
                board.wait(w)
                commanded_total = board.head.strokes_made + board.head.steps_queued // board.config.STEPS_PER_STROKE
            a.step()
            commanded_total = board.head.strokes_made + (board.head.steps_queued + board.head.steps_into_stroke
                                                         ) // board.config.STEPS_PER_STROKE
            day, ms = MONDAY + (minute - 1) // 1440, ((minute - 1) % 1440) * MIN_MS
            integral += _rate(program, day, ms) * MIN_MS
            programmed.append(integral)
            commanded.append(commanded_total)
            pumped.append(board.head.strokes_made)
            if pump.reservoir.volume_nl < 4000000:
                board.head.reservoir_nl = FILL_NL
                assert pump.fill(board.ticks_ms(), FILL_NL, program["conc_ug_per_ml"]) is None
        return programmed, commanded, pumped, stroke_units


def worst(programmed, delivered, stroke_units, window_min):
    # (largest |deviation| in strokes, the same in % of the window's programmed drug),
    # exact: integers in progress units, one Fraction at the end
    best = 0
    best_pct = Fraction(0)
    n = len(programmed) - 1
    starts = range(0, n - window_min + 1) if window_min < n else [0]
    for s in starts:
        e = min(s + window_min, n)
        want = programmed[e] - programmed[s]
        dev = abs((delivered[e] - delivered[s]) * stroke_units - want)
        if dev > best:
            best = dev
        if want and dev * best_pct.denominator > best_pct.numerator * want:
            best_pct = Fraction(dev, want)
    return Fraction(best, stroke_units), best_pct * 100


def table(days=90):
    # rows of: program, then for commanded and for pumped the worst deviation over
    # 1 h, 24 h and the whole run ("strokes (percent)"); and the largest in strokes
    rows = []
    overall = Fraction(0)
    for name, program in REFERENCE:
        programmed, commanded, pumped, stroke_units = run(program, days)
        row = [name]
        for series in (commanded, pumped):
            for window in (60, 1440, days * 1440):
                strokes, pct = worst(programmed, series, stroke_units, window)
                overall = max(overall, strokes)
                row.append("%.3f (%.2g%%)" % (float(strokes), float(pct)))
        rows.append(row)
    return rows, overall


if __name__ == "__main__":
    for r in table(int(sys.argv[1]) if len(sys.argv) > 1 else 90)[0]:
        print(r)
