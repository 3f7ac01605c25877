"""Flow accuracy of the pump as IEC 60601-2-24 judges volumetric infusion pumps: the
start-up curve, the trumpet curve and the overall mean error, plus windows of hours for
this pump's microlitre-an-hour rates (docs/bench.md).

    python -m tools.accuracy balance LOG.csv --rate 0.4mL/day --temp-c 21.5 -o acc.png
    python -m tools.accuracy pump run.jsonl -o acc.png        # `console watch --json` output
    python -m tools.accuracy sim --program baclofen:500:200 --duration 3d -o acc.png

From Python: from_balance(), from_pump_log() and from_sim() each return a Result
(figures plus what they came from); report.table() prints it, report.render_png() draws it.

Modules: curves (the figures from a volume record), balance (balance logs, water
density, the modelled balance), pumplog (the pump's own account), simrun (the simulated
Pico's head truth), report (the table and the PNG).
"""
from __future__ import annotations

import re
from fractions import Fraction
from typing import NamedTuple

from tools.accuracy import balance, curves, pumplog
from tools.accuracy.curves import SAMPLE_S, AccuracyError, Figures

__all__ = ["AccuracyError", "Figures", "Result", "from_balance", "from_pump_log", "from_sim",
           "parse_rate", "parse_duration", "parse_program"]

# nL/day per unit
_RATE_UNITS = {"nl/day": Fraction(1), "ul/day": Fraction(1000), "ml/day": Fraction(1000000),
               "nl/h": Fraction(24), "ul/h": Fraction(24000), "ml/h": Fraction(24000000)}
_DURATION_UNITS = {"ms": Fraction(1, 1000), "s": Fraction(1), "m": Fraction(60), "min": Fraction(60),
                   "h": Fraction(3600), "d": Fraction(86400)}
BALANCE_GAP_MAX_S = 2 * SAMPLE_S  # readings further apart than this leave a gap


class Result(NamedTuple):
    figures: Figures
    rate_nl_per_day: Fraction  # the set rate, exact
    stroke_nl: float | None
    source: str  # one line: what was measured, and how
    notes: list[str]
    title: str


def parse_rate(text: str) -> Fraction:
    """'0.4mL/day', '16.667 uL/h', '400000 nL/day' (also µL) -> nL/day, exact."""
    m = re.match(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*([nuµμm]l)\s*/\s*(day|d|h|hour)\s*$", text, re.IGNORECASE)
    if m is None:
        raise AccuracyError("rate %r: give a number and a unit, e.g. 0.4mL/day, 16.667uL/h, 400000nL/day" % text)
    vol = m.group(2).lower().replace("µ", "u").replace("μ", "u")
    per = "day" if m.group(3).lower() in ("day", "d") else "h"
    rate = Fraction(m.group(1)) * _RATE_UNITS["%s/%s" % (vol, per)]
    if rate <= 0:
        raise AccuracyError("rate %r: must be above 0" % text)
    return rate


def parse_duration(text: str) -> Fraction:
    """'90s', '30m', '2.5h', '3d', '500ms' -> seconds, exact; a bare number is seconds."""
    m = re.match(r"^\s*(\d+(?:\.\d*)?|\.\d+)\s*(ms|s|min|m|h|d)?\s*$", text)
    if m is None:
        raise AccuracyError("duration %r: give a number with a unit, e.g. 90s, 30m, 2.5h, 3d" % text)
    return Fraction(m.group(1)) * _DURATION_UNITS[m.group(2) or "s"]


def parse_program(text: str) -> tuple[str, int, int]:
    """DRUG:CONC_UG_PER_ML:DOSE_UG_PER_DAY (the simulated Pico's --program form)."""
    parts = text.split(":")
    try:
        if len(parts) != 3 or not parts[0]:
            raise ValueError
        conc, dose = int(parts[1]), int(parts[2])
        if conc <= 0 or dose <= 0:
            raise ValueError
    except ValueError:
        raise AccuracyError("program %r: expected DRUG:CONC_UG_PER_ML:DOSE_UG_PER_DAY with whole numbers "
                            "above 0, e.g. baclofen:500:200" % text) from None
    return parts[0], conc, dose


def program_rate_nl_per_day(conc_ug_per_ml: int, dose_ug_per_day: int) -> Fraction:
    # ug/day over ug/mL is mL/day
    return Fraction(dose_ug_per_day * 1000000, conc_ug_per_ml)


def rate_text(nl_per_day: Fraction) -> str:
    """'0.4 mL/day = 16.667 uL/h': the set rate as a bench reads it."""
    ml_day = float(nl_per_day) / 1e6
    ul_h = float(nl_per_day) / 24000
    return "%s mL/day = %s uL/h" % (_num(ml_day), _num(ul_h))


def _num(x: float) -> str:
    return ("%.4f" % x).rstrip("0").rstrip(".") if x >= 0.001 else "%.3g" % x


def from_balance(path: str, rate_nl_per_day: Fraction, temp_c: float = balance.BENCH_TEMP_C,
                 start: float | str = 0.0, evaporation_mg_per_h: float = 0.0, blank: str | None = None,
                 stroke_nl: float | None = None, air_kg_m3: float = balance.AIR_KG_M3) -> Result:
    """A balance log (docs/bench.md): the infusion started `start` seconds after its
    first reading, or at a time on the log's clock ("10:02:30", "2024-05-01T10:02:30");
    evaporation as a rate, or measured from a blank run's log."""
    log = balance.read(path)
    if isinstance(start, str):
        try:
            start_s = float(parse_duration(start))
        except AccuracyError:
            start_s = balance.start_offset_s(log, start)
    else:
        start_s = float(start)
    notes = []
    if blank is not None:
        evaporation_mg_per_h = balance.evaporation_mg_per_h(balance.read(blank))
        notes.append("evaporation from the blank run %s: %.4f mg/h" % (blank, evaporation_mg_per_h))
    vols = balance.volumes_ul(log, temp_c, evaporation_mg_per_h, air_kg_m3)
    grid = curves.grid(log.times_s, vols, start_s, BALANCE_GAP_MAX_S, what=path)
    rho = balance.water_kg_m3(temp_c)
    source = ("balance log %s (%s clock, %d readings); water at %g C: %.4f g/mL (Tanaka et al. 2001), "
              "air buoyancy corrected (OIML R 111-1 conventions); evaporation %g mg/h added back" % (
                  path, log.clock, len(log.times_s), temp_c, rho / 1000, evaporation_mg_per_h))
    figs = curves.figures(grid, rate_nl_per_day / 24000, _ul(stroke_nl), what=path)
    return Result(figs, rate_nl_per_day, stroke_nl, source, notes, "Balance log %s" % path)


def from_pump_log(path: str, run: int | None = None, stroke_nl: int | None = None,
                  start_s: float | None = None, duration_s: float | None = None) -> Result:
    """The pump's own account: `console watch --json` output, or a log export."""
    d = pumplog.delivery(pumplog.read(path), run, stroke_nl,
                         None if start_s is None else round(start_s * 1000),
                         None if duration_s is None else round(duration_s * 1000), path)
    if d.grid_ul is not None:
        grid = d.grid_ul
    else:
        grid = curves.grid(d.times_s, d.volumes_ul, 0.0, pumplog.STATUS_GAP_MAX_S, hold=True, what=path)
    figs = curves.figures(grid, d.rate_nl_per_day / 24000, _ul(d.stroke_nl), what=path)
    return Result(figs, d.rate_nl_per_day, d.stroke_nl, "%s: %s" % (path, d.what), d.notes, "Pump log %s" % path)


def from_sim(conc_ug_per_ml: int = 500, dose_ug_per_day: int = 200, duration_s: int = 3 * 86400,
             seed: int = 1, model: balance.Model | None = None, true_stroke_nl: int | None = None,
             unprimed_nl: int = 0, balance_csv: str | None = None, pump_log: str | None = None,
             drug: str = "baclofen") -> Result:
    """The simulated Pico's head truth weighed by a modelled balance (None: an ideal
    one, every nanolitre as it arrives). balance_csv / pump_log: also write the modelled
    balance's log and the pump's frames (as `console watch --json`) to these files."""
    from tools.accuracy import simrun
    run = simrun.run(conc_ug_per_ml, dose_ug_per_day, duration_s, SAMPLE_S, seed, true_stroke_nl,
                     keep_frames=pump_log is not None, drug=drug)
    rate = program_rate_nl_per_day(conc_ug_per_ml, dose_ug_per_day)
    arrived = [max(0, nl - unprimed_nl) / 1000.0 for nl in run.tip_nl]
    notes = []
    if model is None and balance_csv:
        model = balance.Model(0, 0, 0)  # an ideal balance that writes a log
    if model is None:
        grid = arrived
        weighed = "an ideal balance (every nanolitre as it arrives)"
    else:
        masses = [model.reading_mg(t, v) for t, v in zip(run.times_s, arrived)]
        log = balance.Log(run.times_s, masses, "seconds", "0")
        vols = balance.volumes_ul(log, model.temp_c, model.evaporation_mg_per_h)
        grid = curves.grid(log.times_s, vols, 0.0, BALANCE_GAP_MAX_S, what="the modelled balance's log")
        weighed = "a modelled balance: %s; evaporation corrected at the modelled rate" % model.describe()
        if balance_csv:
            balance.write_csv(balance_csv, run.times_s, masses)
            notes.append("the modelled balance's log: %s" % balance_csv)
    if pump_log:
        import json
        with open(pump_log, "w") as f:
            for body in run.statuses:
                f.write(json.dumps(body, sort_keys=True) + "\n")
        notes.append("the pump's frames (as `console watch --json`): %s" % pump_log)
    head = "%d nL strokes" % run.stroke_nl
    if run.true_stroke_nl != run.stroke_nl:
        head = "a head that moves %d nL a stroke, calibrated as %d nL" % (run.true_stroke_nl, run.stroke_nl)
    if unprimed_nl:
        head += ", %g uL of outlet tubing unprimed" % (unprimed_nl / 1000.0)
    source = ("the simulated Pico (seed %d, %s): what left the catheter tip, weighed by %s" % (seed, head, weighed))
    figs = curves.figures(grid, rate / 24000, run.true_stroke_nl / 1000.0, what="the simulated run")
    title = "Simulated Pico: %s %d ug/mL at %d ug/day" % (drug, conc_ug_per_ml, dose_ug_per_day)
    return Result(figs, rate, run.true_stroke_nl, source, notes, title)


def _ul(nl: float | None) -> float | None:
    return None if nl is None else nl / 1000.0
