"""How program files are shown: exact decimal figures, the `check` summary, the `wire` JSON.

Every figure is computed from the pump's integers (ng, nL, ms) with fractions and printed
as an exact decimal; no float touches a dose. tools/programfile.py is the reader.
"""
from __future__ import annotations

import json
from decimal import Decimal
from fractions import Fraction
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tools.programfile import ProgramFile

NG_PER_UG = 1000
NL_PER_UL = 1000
NL_PER_ML = 1000000
DAY_MS = 86400000
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def decimal_text(value: Fraction | int, max_places: int = 9) -> str:
    # A rational as a decimal, exactly when it has at most max_places decimals; otherwise
    # rounded to that many and marked "~" (a day's total over steps that start off the
    # hour, a volume at a concentration such as 30 ug/mL).
    value = Fraction(value)
    for places in range(max_places + 1):
        scaled = value * 10 ** places
        if scaled.denominator == 1:
            return _places(int(scaled), places)
    return "~" + _places(round(value * 10 ** max_places), max_places).rstrip("0").rstrip(".")


def _places(n: int, places: int) -> str:
    return format(Decimal(n).scaleb(-places), "f")


# Drug in ug to the ng, volumes in mL or uL to the nL: the pump's own resolution.
def ug(ng: int | Fraction) -> str:
    return decimal_text(Fraction(ng) / NG_PER_UG, 3)


def ml(nl: int | Fraction) -> str:
    return decimal_text(Fraction(nl) / NL_PER_ML, 6)


def ul(nl: int | Fraction) -> str:
    return decimal_text(Fraction(nl) / NL_PER_UL, 3)


def hhmm(minutes: int) -> str:
    return "%02d:%02d" % divmod(minutes, 60)


def whole_strokes_note(dose_ng: int, stroke_pg: int) -> str:
    # The pump gives a bolus in whole strokes: say so when a dose is not a whole number.
    strokes = dose_ng * 1000 // stroke_pg
    if strokes * stroke_pg == dose_ng * 1000:
        return ""
    return "; the pump gives whole strokes: %d strokes = %s ug" % (
        strokes, decimal_text(Fraction(strokes * stroke_pg, 10 ** 6)))


def summary(pf: ProgramFile) -> list[str]:
    # The `check` output for a valid file: what the pump will do, in a clinician's units.
    p = pf.checked
    assert p is not None and pf.limits is not None and pf.board is not None
    head = pf.board.head
    conc = p.conc_ug_per_ml
    sched = p.schedule

    def per_day(ng: int) -> str:
        # ng/day x 1000 / (ug/mL) = nL/day
        return "%s ug/day  %s mL/day" % (ug(ng), ml(Fraction(ng * 1000, conc)))

    out = ["%s: valid for %s (%s: %d nL a stroke, up to %s mL/day)"
           % (pf.source, pf.board.label, pf.board.config_path, head.stroke_nl, ml(head.max_nl_per_day))]
    if pf.description:
        out.append("  " + pf.description.strip().replace("\n", "\n  "))
    out += ["", "Drug            %s  %d ug/mL" % (p.drug, conc)]
    continuous = p.continuous_ng_per_day()
    if continuous >= 0:
        out.append("Dose            continuous  %s" % per_day(continuous))
    else:
        out.append("Dose            flex schedule, %d profile%s" % (len(p.names), "" if len(p.names) == 1 else "s"))
        for i, name in enumerate(p.names):
            days = [WEEKDAYS[d].capitalize() for d in range(7) if sched.week[d] == i]
            out.append("  profile %s  (%s)" % (name, ", ".join(days) if days else "not used in the week"))
            steps = sched.profiles[i]
            if steps[0][0] > 0 and days:
                # which step runs on depends on the day before
                before = sorted({sched.profiles[sched.week[(d + 6) % 7]][-1][1] for d in range(7)
                                 if sched.week[d] == i})
                out.append("    00:00  the previous day's last step runs on (%s ug/day)"
                           % " or ".join(ug(r) for r in before))
            for start_ms, rate in steps:
                out.append("    %s  %s" % (hhmm(start_ms // 60000), per_day(rate)))
        out.append("Daily totals    (midnight to midnight, each day after the one before it)")
        for d in range(7):
            ng, rem = sched.integral(d, 0, DAY_MS)
            total = Fraction(ng) + Fraction(rem, DAY_MS)  # exact: the pump carries rem too
            out.append("  %-9s  %-12s  %s ug  %s mL" % (WEEKDAYS[d].capitalize(), p.names[sched.week[d]],
                                                      ug(total), ml(total * 1000 / conc)))
    window = sched.max_window_ng()
    line = "Largest 24 h    %s ug from the schedule" % ug(window)
    if p.patient is not None:
        allowance = p.patient.dose_ng * p.patient.max_per_24h
        line += " + %d patient boluses x %s ug = %s ug" % (p.patient.max_per_24h, ug(p.patient.dose_ng),
                                                          ug(window + allowance))
    out.append(line + "  (any 24 h window, rounded up to the ng)")
    for action in pf.actions:
        out.append("                + the one-off clinician bolus %s ug on the first day" % ug(action["dose_ng"]))
    lim = pf.limits
    out.append("Limits          max rate %s ug/day, max in 24 h %s ug, max bolus %s ug"
               % (ug(lim["max_rate_ng_per_day"]), ug(lim["max_24h_ng"]), ug(lim["max_bolus_ng"])))
    stroke_pg = head.stroke_nl * conc
    if p.patient is not None:
        pb = p.patient
        out.append("Patient bolus   %s ug (%s mL) over %d min; lockout %d min; at most %d in 24 h%s"
                   % (ug(pb.dose_ng), ml(Fraction(pb.dose_ng * 1000, conc)), pb.duration_min, pb.lockout_min,
                      pb.max_per_24h, whole_strokes_note(pb.dose_ng, stroke_pg)))
    else:
        out.append("Patient bolus   none")

    def vol(key: str, nl: int, unit: str) -> str:
        return "%s %s%s" % (ul(nl), unit, "" if key in pf.given else " (pump default)")

    out.append("Line            pump dead volume %s, catheter dead volume %s"
               % (vol("pump_dead_volume_nl", p.pump_dead_volume_nl, "uL"),
                  vol("catheter_dead_volume_nl", p.catheter_dead_volume_nl, "uL")))
    out.append("                priming %s, keep-open while paused %s"
               % (vol("priming_nl_per_hour", p.priming_nl_per_hour, "uL/h"),
                  vol("keep_open_nl_per_day", p.keep_open_nl_per_day, "uL/day")))
    for action in pf.actions:
        out.append("One-off         clinician bolus %s ug (%s mL) over %d min, when the program is first given%s"
                   % (ug(action["dose_ng"]), ml(Fraction(action["dose_ng"] * 1000, conc)), action["duration_min"],
                      whole_strokes_note(action["dose_ng"], stroke_pg)))
    out += ["", "Valid: %s would accept these limits, this program%s."
            % (pf.board.label, " and the one-off bolus" if pf.actions else "")]
    return out


def wire_json(obj: Any, indent: str = "") -> str:
    # JSON with sorted keys, one key a line, each step [start_min, dose] on one line.
    inner = indent + "  "
    if isinstance(obj, dict) and obj:
        items = ["%s%s: %s" % (inner, json.dumps(k), wire_json(obj[k], inner)) for k in sorted(obj)]
        return "{\n" + ",\n".join(items) + "\n" + indent + "}"
    if isinstance(obj, list) and any(isinstance(x, (dict, list)) for x in obj):
        return "[\n" + ",\n".join(inner + wire_json(x, inner) for x in obj) + "\n" + indent + "]"
    return json.dumps(obj)
