"""The program file format (docs/programs.md): TOML in a clinician's units, read into the pump's wire forms.

translate(text, head) is pass 1 of tools/programfile.py: every key known, every value of
the right form, decimals converted EXACTLY (TOML decimals arrive as decimal.Decimal,
never as float), ranges in the file's own units. The ranges are the firmware's: its
constants, and the pump head's calibration (`head`, a pump.core.PumpConfig). Every error
is kept, each naming the TOML field, the value as written and what is allowed.
"""
from __future__ import annotations

import datetime
import json
import os
import re
import sys
import tomllib
from dataclasses import dataclass, field
from decimal import Decimal
from fractions import Fraction
from typing import Any

_FIRMWARE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware")
if _FIRMWARE not in sys.path:
    sys.path.append(_FIRMWARE)  # appended: firmware module names must not shadow the host's

from pump import program as core  # noqa: E402
from pump.core import PumpConfig  # noqa: E402
from pump.limits import LIMIT_NG_MAX  # noqa: E402
from pump.program import fastest_bolus_min  # noqa: E402
from tools.programreport import NG_PER_UG, NL_PER_ML, NL_PER_UL, WEEKDAYS, decimal_text, hhmm  # noqa: E402

FORMAT_VERSION = 1
CONTINUOUS_PROFILE = "all"  # the name the core gives the one profile of a continuous dose

# Ranges the core writes as literals rather than named constants (pump/program.py
# validate(), pump/therapy.py set_limits() and bolus_request()). Kept equal to them by
# host_tests/test_programfile.py, which tries every boundary on the core itself.
PATIENT_DURATION_MIN = (1, 240)
PATIENT_LOCKOUT_MIN = (10, 1440)
PATIENT_MAX_PER_24H = (1, 24)
LIMIT_NG_MIN = 1000
CLINICIAN_BOLUS_DURATION_MIN = (1, 1440)

_HHMM = re.compile(r"([01][0-9]|2[0-3]):([0-5][0-9])\Z")
_DECIMAL_TEXT = re.compile(r"[+-]?[0-9]+(\.[0-9]+)?\Z")
_PROFILE_NAME = re.compile(r"[A-Za-z0-9_-]+\Z")  # a bare TOML key, so paths read as written

# Volumes carry their unit in the key's name.
# base name -> (wire key, its unit, {key suffix: (nL per file unit, file unit)})
_LINE_KEYS = {
    "pump_dead_volume": ("pump_dead_volume_nl", "nL", {"_ul": (NL_PER_UL, "uL"), "_ml": (NL_PER_ML, "mL")}),
    "catheter_dead_volume": ("catheter_dead_volume_nl", "nL",
                             {"_ul": (NL_PER_UL, "uL"), "_ml": (NL_PER_ML, "mL")}),
    "priming": ("priming_nl_per_hour", "nL/h",
                {"_ul_per_hour": (NL_PER_UL, "uL/h"), "_ml_per_hour": (NL_PER_ML, "mL/h")}),
    "keep_open": ("keep_open_nl_per_day", "nL/day",
                  {"_ul_per_day": (NL_PER_UL, "uL/day"), "_ml_per_day": (NL_PER_ML, "mL/day")}),
}
_TOP_KEYS = ("format_version", "description", "drug", "concentration_ug_per_ml", "dose_ug_per_day",
             "profiles", "week", "line", "patient_bolus", "limits", "clinician_bolus")
_STEP_KEYS = ("start", "dose_ug_per_day")
_PATIENT_KEYS = ("dose_ug", "duration_min", "lockout_min", "max_per_24h")
_LIMIT_KEYS = (("max_rate_ug_per_day", "max_rate_ng_per_day", "ug/day"),
               ("max_24h_ug", "max_24h_ng", "ug"),
               ("max_bolus_ug", "max_bolus_ng", "ug"))
_CLINICIAN_KEYS = ("dose_ug", "duration_min")


class TomlDecimal(Decimal):
    # A TOML decimal read exactly, keeping its text: error messages quote the file.
    text: str

    def __new__(cls, text: str) -> "TomlDecimal":
        d = super().__new__(cls, text)
        d.text = text
        return d


def shown(value: Any) -> str:
    # A value as the file wrote it, for error messages.
    if isinstance(value, TomlDecimal):
        return value.text
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, Decimal)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (datetime.time, datetime.date, datetime.datetime)):
        return value.isoformat()
    text = json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass
class FieldError:
    path: str  # the TOML field, e.g. profiles.night[2].dose_ug_per_day
    value: str | None  # as written in the file (None: the field is missing)
    allowed: str  # what is wrong and what is allowed

    def __str__(self) -> str:
        if self.value is None:
            return "%s: %s" % (self.path, self.allowed)
        return "%s = %s: %s" % (self.path, self.value, self.allowed)


@dataclass
class Translation:
    errors: list[FieldError] = field(default_factory=list)
    description: str = ""
    program: dict[str, Any] | None = None  # wire form for set_program (None: errors)
    limits: dict[str, int] | None = None  # wire form for set_limits
    actions: list[dict[str, Any]] = field(default_factory=list)  # one-off, after the program
    origin: dict[str, str] = field(default_factory=dict)  # firmware field name -> TOML path
    given: set[str] = field(default_factory=set)  # optional wire fields the file set
    written: dict[str, str] = field(default_factory=dict)  # TOML path -> value as written


def translate(text: str, head: PumpConfig, into: Translation | None = None) -> Translation:
    t = into if into is not None else Translation()
    try:
        # parse_float: 112.5 is exactly 112.5, never the nearest binary float
        doc = tomllib.loads(text, parse_float=TomlDecimal)
    except tomllib.TOMLDecodeError as e:
        t.errors.append(FieldError("(file)", None, "not valid TOML: %s" % e))
        return t
    _Translator(t, head).run(doc)
    return t


class _Translator:
    def __init__(self, t: Translation, head: PumpConfig) -> None:
        self.t = t
        self.head = head
        self.conc: int | None = None

    # -- forms
    def error(self, path: str, value: Any, allowed: str, missing: bool = False) -> None:
        self.t.errors.append(FieldError(path, None if missing else shown(value), allowed))

    def keys(self, table: dict[str, Any], prefix: str, allowed: tuple[str, ...], hints: dict[str, str]) -> None:
        # every key known: a misspelt key would otherwise be silently ignored
        for key in table:
            if key in allowed:
                continue
            hint = next((h for base, h in hints.items() if key.startswith(base)), None)
            self.error(prefix + key, table[key], hint or "unknown key; allowed here: " + ", ".join(allowed))

    def table(self, doc: dict[str, Any], key: str, required: str = "") -> dict[str, Any] | None:
        value = doc.get(key)
        if value is None:
            if required:
                self.error(key, None, "missing; " + required, missing=True)
            return None
        if not isinstance(value, dict):
            self.error(key, value, "must be a table ([%s])" % key)
            return None
        return value

    def number(self, value: Any, path: str, what: str) -> Fraction | None:
        # A number as written: a TOML integer, a TOML decimal (exact) or a string of
        # digits with an optional decimal point ("112.5").
        if isinstance(value, bool) or not isinstance(value, (int, Decimal, str)):
            self.error(path, value, "must be %s" % what)
            return None
        if isinstance(value, str):
            if not _DECIMAL_TEXT.match(value):
                self.error(path, value, "must be %s (digits with an optional decimal point)" % what)
                return None
            return Fraction(Decimal(value))
        if isinstance(value, Decimal) and not value.is_finite():
            self.error(path, value, "must be %s" % what)
            return None
        return Fraction(value)

    def amount(self, table: dict[str, Any], key: str, path: str, per_unit: int, unit: str,
               small_unit: str, lo: int, hi: int, note: str = "") -> int | None:
        # A quantity in the file's unit (ug, uL, mL, min) converted exactly to whole small
        # units (ng, nL, min); lo..hi are in small units.
        allowed = "%s..%s %s%s" % (decimal_text(Fraction(lo, per_unit)), decimal_text(Fraction(hi, per_unit)),
                                   unit, note)
        if key not in table:
            self.error(path, None, "missing; allowed " + allowed, missing=True)
            return None
        value = table[key]
        n = self.number(value, path, "a number of %s: %s" % (unit, allowed))
        if n is None:
            return None
        small = n * per_unit
        if small.denominator != 1:
            if per_unit == 1:
                self.error(path, value, "must be a whole number of %s: %s" % (unit, allowed))
            else:
                self.error(path, value, "not a whole number of %s: at most %d decimals in %s; allowed %s"
                           % (small_unit, len(str(per_unit)) - 1, unit, allowed))
            return None
        if not lo <= small <= hi:
            self.error(path, value, "outside the allowed range " + allowed)
            return None
        self.t.written[path] = shown(value)
        return int(small)

    def whole(self, table: dict[str, Any], key: str, path: str, lo: int, hi: int, unit: str) -> int | None:
        return self.amount(table, key, path, 1, unit, unit, lo, hi)

    def text(self, table: dict[str, Any], key: str, path: str, max_chars: int) -> str | None:
        value = table.get(key)
        if not isinstance(value, str) or not 1 <= len(value) <= max_chars:
            self.error(path, value, "%s a name of 1..%d characters" % ("missing;" if value is None else "must be",
                                                                       max_chars), missing=value is None)
            return None
        return value

    def start(self, value: Any, path: str) -> int | None:
        # "HH:MM", or a TOML local time on the minute (07:00:00)
        allowed = "must be a time of day \"HH:MM\", 00:00..23:59"
        if value is None:
            self.error(path, None, "missing; a time of day \"HH:MM\", 00:00..23:59", missing=True)
            return None
        if isinstance(value, str):
            m = _HHMM.match(value)
            if m:
                return int(m.group(1)) * 60 + int(m.group(2))
        elif isinstance(value, datetime.time):
            if value.second == 0 and value.microsecond == 0 and value.tzinfo is None:
                return value.hour * 60 + value.minute
            allowed += " (whole minutes)"
        self.error(path, value, allowed)
        return None

    # -- the document
    def run(self, doc: dict[str, Any]) -> None:
        t = self.t
        self.keys(doc, "", _TOP_KEYS, {"dose": "unknown key: a continuous dose is dose_ug_per_day",
                                       "conc": "unknown key: the concentration is concentration_ug_per_ml"})
        version = doc.get("format_version", FORMAT_VERSION)
        if type(version) is not int or version != FORMAT_VERSION:
            self.error("format_version", version, "this tool reads format_version = %d" % FORMAT_VERSION)
        if "description" in doc:
            if isinstance(doc["description"], str):
                t.description = doc["description"]
            else:
                self.error("description", doc["description"], "must be text")
        program: dict[str, Any] = {}
        t.origin["drug"] = "drug"
        drug = self.text(doc, "drug", "drug", core.DRUG_NAME_CHARS_MAX)
        if drug is not None:
            program["drug"] = drug
        t.origin["conc_ug_per_ml"] = "concentration_ug_per_ml"
        self.conc = self.whole(doc, "concentration_ug_per_ml", "concentration_ug_per_ml",
                               core.CONC_UG_PER_ML_MIN, core.CONC_UG_PER_ML_MAX, "ug/mL")
        if self.conc is not None:
            program["conc_ug_per_ml"] = self.conc
        self.schedule(doc, program)
        self.line(doc, program)
        self.patient(doc, program)
        limits = self.limits(doc)
        actions = self.clinician(doc)
        if not t.errors:
            t.program, t.limits, t.actions = program, limits, actions

    def dose(self, table: dict[str, Any], key: str, path: str) -> int | None:
        # A dose rate: whole ng/day, within what this head delivers at this concentration
        # (at least a stroke a day, at most the head's volume rate; pump.program).
        if self.conc is None:
            if key in table:  # the range needs a concentration: check the form only
                n = self.number(table[key], path, "a number of ug/day")
                if n is not None and (n * NG_PER_UG).denominator != 1:
                    self.error(path, table[key], "not a whole number of ng/day: at most 3 decimals in ug/day")
                return None
            return self.amount(table, key, path, NG_PER_UG, "ug/day", "ng/day", 0, core.DOSE_NG_PER_DAY_MAX)
        lo, hi = core.deliverable_ng_per_day(self.conc, self.head.stroke_nl, self.head.max_nl_per_day)
        return self.amount(table, key, path, NG_PER_UG, "ug/day", "ng/day", lo, min(hi, core.DOSE_NG_PER_DAY_MAX),
                           " (what this pump head delivers at %d ug/mL)" % self.conc)

    def schedule(self, doc: dict[str, Any], program: dict[str, Any]) -> None:
        t = self.t
        has_dose, has_profiles = "dose_ug_per_day" in doc, "profiles" in doc
        if has_dose == has_profiles:
            self.error("dose_ug_per_day" if has_dose else "profiles", None,
                       "%s; give either dose_ug_per_day (one dose all day, every day) or [profiles] "
                       "(flex steps by time of day)" % ("both given" if has_dose else "missing"), missing=True)
            return
        if has_dose:
            if "week" in doc:
                self.error("week", doc["week"], "only with [profiles]: a continuous dose runs every day")
            # the pump's own form of a continuous dose: one profile of one step, every day
            for name in ("profiles", "profiles." + CONTINUOUS_PROFILE, "week",
                         "profiles.%s[0].dose_ng_per_day" % CONTINUOUS_PROFILE):
                t.origin[name] = "dose_ug_per_day"
            ng = self.dose(doc, "dose_ug_per_day", "dose_ug_per_day")
            if ng is not None:
                program["profiles"] = {CONTINUOUS_PROFILE: [[0, ng]]}
                program["week"] = [CONTINUOUS_PROFILE] * 7
            return
        profiles_in = self.table(doc, "profiles")
        if profiles_in is None:
            return
        t.origin["profiles"] = "profiles"
        if not 1 <= len(profiles_in) <= core.PROFILES_MAX:
            self.error("profiles", profiles_in, "must name 1..%d day profiles" % core.PROFILES_MAX)
            return
        profiles: dict[str, list[list[int]]] = {}
        for name, steps_in in profiles_in.items():
            path = "profiles." + name
            if name in _TOP_KEYS:
                # TOML's commonest trap: a plain key after a [table] header belongs to it
                self.error(path, steps_in, "%s was written after [profiles], so TOML puts it in that table: "
                           "move it above the first [table], or write it as [%s]" % (name, name))
                continue
            if not _PROFILE_NAME.match(name) or len(name) > core.PROFILE_NAME_CHARS_MAX:
                self.error("profiles." + json.dumps(name) if not _PROFILE_NAME.match(name) else path, name,
                           "a profile name is 1..%d letters, digits, _ or -" % core.PROFILE_NAME_CHARS_MAX)
                continue
            t.origin[path] = path
            steps = self.steps(steps_in, path)
            if steps is not None:
                profiles[name] = steps
        week = self.week(doc, [name for name in profiles_in if name not in _TOP_KEYS])
        if len(profiles) == len(profiles_in) and week is not None:
            program["profiles"] = profiles
            program["week"] = week

    def steps(self, steps_in: Any, path: str) -> list[list[int]] | None:
        if not isinstance(steps_in, list) or not 1 <= len(steps_in) <= core.STEPS_PER_DAY_MAX:
            self.error(path, steps_in, "must be a list of 1..%d steps, each { start = \"HH:MM\", "
                       "dose_ug_per_day = ... }" % core.STEPS_PER_DAY_MAX)
            return None
        steps: list[list[int]] | None = []
        last = -1
        for i, step in enumerate(steps_in):
            where = "%s[%d]" % (path, i)
            self.t.origin[where] = where
            self.t.origin[where + ".start_min"] = where + ".start"
            self.t.origin[where + ".dose_ng_per_day"] = where + ".dose_ug_per_day"
            if not isinstance(step, dict):
                self.error(where, step, "must be a step { start = \"HH:MM\", dose_ug_per_day = ... }")
                steps = None
                continue
            self.keys(step, where + ".", _STEP_KEYS, {})
            start = self.start(step.get("start"), where + ".start")
            if start is not None and start <= last:
                self.error(where + ".start", step["start"], "must come after the previous step's %s "
                           "(steps in time order, each running until the next)" % hhmm(last))
                start = None
            if start is not None:
                last = start
            dose = self.dose(step, "dose_ug_per_day", where + ".dose_ug_per_day")
            if start is None or dose is None or steps is None:
                steps = None
                continue
            steps.append([start, dose])
        return steps

    def week(self, doc: dict[str, Any], names: list[str]) -> list[str] | None:
        choices = "one of the profiles: " + ", ".join(names)
        week_in = doc.get("week")
        self.t.origin["week"] = "week"
        if week_in is None:
            if len(names) == 1:
                return names * 7
            self.error("week", None, "missing; with %d profiles name one for each day: a [week] table "
                       "(monday = \"...\" ... sunday = \"...\") or week = [7 names, Monday first]" % len(names),
                       missing=True)
            return None
        if isinstance(week_in, list):
            if len(week_in) != 7:
                self.error("week", week_in, "must list 7 profile names, Monday first")
                return None
            paths, values = ["week[%d]" % i for i in range(7)], week_in
        elif isinstance(week_in, dict):
            self.keys(week_in, "week.", WEEKDAYS, {})
            paths, values = ["week." + d for d in WEEKDAYS], [week_in.get(d) for d in WEEKDAYS]
        else:
            self.error("week", week_in, "must be a [week] table or a list of 7 profile names, Monday first")
            return None
        week: list[str] | None = []
        for i, (path, name) in enumerate(zip(paths, values)):
            self.t.origin["week[%d]" % i] = path
            if name not in names:
                self.error(path, name, ("missing; " if name is None else "") + choices, missing=name is None)
                week = None
            elif week is not None:
                week.append(name)
        return week

    def line(self, doc: dict[str, Any], program: dict[str, Any]) -> None:
        table = self.table(doc, "line")
        if table is None:
            return
        allowed = tuple(base + suffix for base, (_, _, units) in _LINE_KEYS.items() for suffix in units)
        hints = {base: "give the unit in the name: " + " or ".join(base + s for s in units)
                 for base, (_, _, units) in _LINE_KEYS.items()}
        self.keys(table, "line.", allowed, hints)
        stroke = self.head.stroke_nl
        ranges = {
            "pump_dead_volume_nl": (0, core.DEAD_VOLUME_NL_MAX, ""),
            "catheter_dead_volume_nl": (0, core.DEAD_VOLUME_NL_MAX, ""),
            "priming_nl_per_hour": (stroke, self.head.max_nl_per_day // 24,
                                    " (one stroke an hour up to this pump head's rate)"),
            "keep_open_nl_per_day": (0, core.KEEP_OPEN_NL_PER_DAY_MAX,
                                     " (0, or at least one %d nL stroke a day)" % stroke),
        }
        for base, (wire_key, small_unit, units) in _LINE_KEYS.items():
            given = [base + s for s in units if base + s in table]
            if len(given) > 1:
                self.error("line." + given[1], table[given[1]], "give %s once, in one unit: %s or %s"
                           % (base, given[0], given[1]))
                continue
            if not given:
                continue
            key = given[0]
            path = "line." + key
            self.t.origin[wire_key] = path
            per_unit, unit = units[key[len(base):]]
            lo, hi, note = ranges[wire_key]
            value = self.amount(table, key, path, per_unit, unit, small_unit, lo, hi, note)
            if value is not None and wire_key == "keep_open_nl_per_day" and 0 < value < stroke:
                self.error(path, table[key], "0, or at least one %d nL stroke a day (%s %s)"
                           % (stroke, decimal_text(Fraction(stroke, per_unit)), unit))
                value = None
            if value is not None:
                program[wire_key] = value
                self.t.given.add(wire_key)

    def patient(self, doc: dict[str, Any], program: dict[str, Any]) -> None:
        table = self.table(doc, "patient_bolus")
        if table is None:
            return
        for key, wire_key in zip(_PATIENT_KEYS, ("dose_ng", "duration_min", "lockout_min", "max_per_24h")):
            # the core names these fields without their table
            self.t.origin["patient_bolus." + wire_key] = self.t.origin[wire_key] = "patient_bolus." + key
        self.keys(table, "patient_bolus.", _PATIENT_KEYS, {"lockout": "unknown key: the lockout is lockout_min",
                                                           "duration": "unknown key: the duration is duration_min"})
        # the smallest dose is one stroke, so it depends on the concentration
        lo = (self.head.stroke_nl * self.conc + 999) // 1000 if self.conc is not None else 1
        out = {"dose_ng": self.amount(table, "dose_ug", "patient_bolus.dose_ug", NG_PER_UG, "ug", "ng", lo,
                                      core.PATIENT_BOLUS_NG_MAX, " (at least one stroke)")}
        for key, (lo, hi), unit in (("duration_min", PATIENT_DURATION_MIN, "min"),
                                    ("lockout_min", PATIENT_LOCKOUT_MIN, "min"),
                                    ("max_per_24h", PATIENT_MAX_PER_24H, "boluses")):
            out[key] = self.whole(table, key, "patient_bolus." + key, lo, hi, unit)
        if out["dose_ng"] is not None and out["duration_min"] is not None and self.conc is not None:
            # the pump refuses a patient bolus its head cannot give in time
            self.fast_enough(out["dose_ng"], out["duration_min"], table, "patient_bolus", PATIENT_DURATION_MIN[1])
        if all(v is not None for v in out.values()):
            program["patient_bolus"] = out

    def fast_enough(self, dose_ng: int, duration_min: int, table: dict[str, Any], prefix: str, hi: int) -> bool:
        # As the pump checks it: whole strokes, no faster than the head's top rate
        # (pump.program.fastest_bolus_min, the firmware's own definition).
        assert self.conc is not None
        stroke_pg = self.head.stroke_nl * self.conc
        strokes = dose_ng * 1000 // stroke_pg
        if strokes < 1:
            self.error(prefix + ".dose_ug", table["dose_ug"], "less than one stroke: this pump head gives %s ug a "
                       "stroke at %d ug/mL" % (decimal_text(Fraction(stroke_pg, 10 ** 6)), self.conc))
            return False
        fastest = fastest_bolus_min(dose_ng, self.conc, self.head.max_nl_per_day)
        if duration_min < fastest:
            self.error(prefix + ".duration_min", table["duration_min"], "its %d strokes need at least %d min on "
                       "this pump head; allowed %d..%d min" % (strokes, fastest, fastest, hi))
            return False
        return True

    def limits(self, doc: dict[str, Any]) -> dict[str, int] | None:
        # Required: a program file is a prescription, and its hard limits are part of it.
        table = self.table(doc, "limits", "the pump's hard limits for this patient: a [limits] table with "
                           + ", ".join(k for k, _, _ in _LIMIT_KEYS))
        if table is None:
            return None
        self.keys(table, "limits.", tuple(k for k, _, _ in _LIMIT_KEYS), {})
        out: dict[str, int] = {}
        for key, wire_key, unit in _LIMIT_KEYS:
            self.t.origin[wire_key] = "limits." + key
            value = self.amount(table, key, "limits." + key, NG_PER_UG, unit, "ng", LIMIT_NG_MIN, LIMIT_NG_MAX)
            if value is not None:
                out[wire_key] = value
        return out if len(out) == len(_LIMIT_KEYS) else None

    def clinician(self, doc: dict[str, Any]) -> list[dict[str, Any]]:
        table = self.table(doc, "clinician_bolus")
        if table is None:
            return []
        self.keys(table, "clinician_bolus.", _CLINICIAN_KEYS, {})
        dose = self.amount(table, "dose_ug", "clinician_bolus.dose_ug", NG_PER_UG, "ug", "ng", 1, LIMIT_NG_MAX)
        lo, hi = CLINICIAN_BOLUS_DURATION_MIN
        duration = self.whole(table, "duration_min", "clinician_bolus.duration_min", lo, hi, "min")
        if dose is None or duration is None or self.conc is None:
            return []
        if not self.fast_enough(dose, duration, table, "clinician_bolus", hi):
            return []
        return [{"action": "clinician_bolus", "dose_ng": dose, "duration_min": duration}]
