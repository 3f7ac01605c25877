# Program files (tools/programfile.py, docs/programs.md): every example in programs/ is a
# program a pump core accepts; decimals become ng and nL exactly; every error names the
# TOML field, the value and what is allowed, all of them at once; the tool's ranges and
# limit checks are the pump's own; the CLI; the simulated Pico started from a file.
import copy
import glob
import json
import os
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import app
from boards.sim import config as sim_config
from pump.core import Pump
from pump.program import ProgramError, fastest_bolus_min, validate
from tools import programfile
from tools.programreport import WEEKDAYS, hhmm, ug
from tools.simpico import SimPico, parse_clock

from procs import frames_of_bounded_run

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLES = sorted(glob.glob(os.path.join(ROOT, "programs", "*.toml")))
SIM = app.pump_config(sim_config)
MONDAY = parse_clock("2024-01-01T00:00")[0]
DAY_MS = 86400000
HOUR_MS = 3600000


class Raw(str):
    """TOML text written as it stands: a decimal (187.5), a local time (07:00:00)."""


def toml_value(v):
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{ " + ", ".join("%s = %s" % (k, toml_value(x)) for k, x in v.items()) + " }"


def render(doc):
    # A program file from a dict: plain keys first, then one [table] per dict.
    lines = ["%s = %s" % (k, toml_value(v)) for k, v in doc.items() if not isinstance(v, dict)]
    for name, table in doc.items():
        if isinstance(table, dict):
            lines.append("[%s]" % name)
            lines += ["%s = %s" % (k, toml_value(v)) for k, v in table.items()]
    return "\n".join(lines) + "\n"


def base_doc(**top):
    doc = {"drug": "baclofen", "concentration_ug_per_ml": 500, "dose_ug_per_day": 200,
           "line": {"pump_dead_volume_ul": 20},
           "patient_bolus": {"dose_ug": 25, "duration_min": 15, "lockout_min": 180, "max_per_24h": 3},
           "limits": {"max_rate_ug_per_day": 2000, "max_24h_ug": 3000, "max_bolus_ug": 100}}
    doc.update(top)
    return doc


def with_(doc, path, value):
    # a copy of doc with doc[a][b] = value for path "a.b" (value None: removed)
    doc = copy.deepcopy(doc)
    parts = path.split(".")
    target = doc
    for p in parts[:-1]:
        target = target[p]
    if value is None:
        target.pop(parts[-1], None)
    else:
        target[parts[-1]] = value
    return doc


def loads(doc, board="sim"):
    return programfile.loads(render(doc) if isinstance(doc, dict) else doc, board)


def errors_at(pf, path):
    return [e for e in pf.errors if e.path == path]


def core_takes(plan, cfg=SIM, clock_ms=0):
    # A pump core as a pump takes a program file's wire form on first boot. Returns the
    # first refusal, or None.
    pump = Pump(cfg)
    pump.power_up(0)
    steps = [lambda: pump.set_limits(0, plan["limits"]),
             lambda: pump.fill(0, 20000000, plan["program"]["conc_ug_per_ml"]),
             lambda: pump.set_clock(0, MONDAY, clock_ms),
             lambda: pump.set_program(0, plan["program"])]
    for a in plan["actions"]:
        steps.append(lambda a=a: pump.bolus_request(0, a["dose_ng"], a["duration_min"]))
    for step in steps:
        reason = step()
        if reason is not None:
            return reason
    return None


# ---- the examples -------------------------------------------------------------------------

def test_the_examples_cover_typical_baclofen_therapy():
    names = {os.path.basename(p) for p in EXAMPLES}
    assert {"screening-bolus-50ug.toml", "continuous-500.toml", "continuous-2000.toml",
            "flex-day-night-2000.toml", "weekday-weekend-500.toml", "titration-start-50.toml"} <= names
    concs = set()
    patient = []
    for path in EXAMPLES:
        pf = programfile.load(path)
        assert pf.ok, pf.errors
        p = pf.checked
        concs.add(p.conc_ug_per_ml)
        if p.patient is not None:
            patient.append(p.patient)
        if "screening" in path:
            # the screening test dose is the bolus; its basal only keeps the catheter open
            assert p.conc_ug_per_ml == 50 and pf.actions == [
                {"action": "clinician_bolus", "dose_ng": 50000, "duration_min": 360}]
            continue
        for steps in p.schedule.profiles:
            for _, rate in steps:
                assert 50000 <= rate <= 800000, (path, rate)  # the clinical range, ug/day
        with open(path) as f:
            assert f.read().startswith("#"), "%s opens with a comment saying what it is for" % path
    assert concs == {50, 500, 2000}
    assert patient and all(pb.lockout_min >= 10 and pb.max_per_24h >= 1 for pb in patient)
    flex = programfile.load(os.path.join(ROOT, "programs", "flex-day-night-2000.toml")).checked
    assert flex.continuous_ng_per_day() < 0 and len(flex.schedule.profiles[0]) >= 2


@pytest.mark.parametrize("path", EXAMPLES, ids=os.path.basename)
def test_every_example_is_valid_and_a_pump_core_accepts_its_wire_form(path):
    for board in ("sim", "pico"):
        pf = programfile.load(path, board)
        assert pf.ok, (board, [str(e) for e in pf.errors])
    plan = programfile.load(path).wire()
    # what crosses to the pump is JSON with integers only: no float anywhere
    text = json.dumps(plan)
    assert json.loads(text, parse_float=lambda s: pytest.fail("a float in the wire form: " + s)) == plan
    pump = Pump(SIM)
    pump.power_up(0)
    assert pump.set_limits(0, plan["limits"]) is None
    assert pump.fill(0, 20000000, plan["program"]["conc_ug_per_ml"]) is None
    assert pump.set_clock(0, MONDAY, 8 * HOUR_MS) is None
    assert pump.set_program(0, plan["program"]) is None
    for action in plan["actions"]:
        assert action["action"] == "clinician_bolus"
        assert pump.bolus_request(0, action["dose_ng"], action["duration_min"]) is None
    assert pump.limits.to_dict() == plan["limits"]
    stored = pump.program.to_dict()
    assert {k: stored[k] for k in plan["program"]} == plan["program"]


# ---- exact numbers ------------------------------------------------------------------------

@pytest.mark.parametrize("written, ng_per_day", [
    ('"112.5"', 112500),
    ("112.5", 112500),  # a TOML decimal: read as Decimal, not float
    ("100.3", 100300),  # as a float, 100.3 * 1000 is 100299.99999999999
    ("2.675", 2675),
    ("1234.567", 1234567),
    ("300", 300000),
    ('"0300.000"', 300000),
    ("3e2", 300000),
])
def test_doses_convert_exactly_to_ng_per_day(written, ng_per_day):
    pf = loads(render(with_(base_doc(), "dose_ug_per_day", Raw(written))))
    assert pf.ok, pf.errors
    assert pf.program["profiles"] == {"all": [[0, ng_per_day]]}


@pytest.mark.parametrize("key, written, nl", [
    ("catheter_dead_volume_ul", "150", 150000),
    ("catheter_dead_volume_ml", "0.15", 150000),
    ("catheter_dead_volume_ml", '"0.000001"', 1),
    ("catheter_dead_volume_ul", "0.001", 1),
    ("catheter_dead_volume_ul", "0", 0),
])
def test_volumes_convert_exactly_to_nl(key, written, nl):
    doc = base_doc()
    doc["line"] = {key: Raw(written)}
    pf = loads(doc)
    assert pf.ok, pf.errors
    assert pf.program["catheter_dead_volume_nl"] == nl


@pytest.mark.parametrize("path, written, unit", [
    ("dose_ug_per_day", '"0.0001"', "ng/day"),
    ("dose_ug_per_day", "200.0005", "ng/day"),
    ("line.catheter_dead_volume_ul", '"0.0005"', "nL"),
    ("line.catheter_dead_volume_ml", "0.0000001", "nL"),
    ("patient_bolus.dose_ug", "25.0001", "ng"),
    ("limits.max_24h_ug", "1999.9999", "ng"),
])
def test_a_value_finer_than_a_ng_or_a_nl_is_an_error_naming_the_field(path, written, unit):
    pf = loads(with_(base_doc(), path, Raw(written)))
    assert not pf.ok and pf.program is None
    (e,) = errors_at(pf, path)
    assert e.value == written
    assert "not a whole number of %s" % unit in str(e)
    assert str(e).startswith("%s = %s: " % (path, written))


def test_a_non_number_is_refused_with_the_form_it_must_take():
    for bad in ("true", '"12,5"', '"1/2"', "nan", "inf", '"two hundred"', "[200]"):
        pf = loads(with_(base_doc(), "dose_ug_per_day", Raw(bad)))
        (e,) = errors_at(pf, "dose_ug_per_day")
        assert "must be a number of ug/day" in e.allowed, e
        assert "0.125..3000 ug/day" in e.allowed, e


# ---- errors: field, value, range, and all of them -----------------------------------------

BROKEN = """\
drug = "baclofen"
concentration_ug_per_ml = 2000
dose_ug_per_dya = 3

[profiles]
night = [
  { start = "00:00", dose_ug_per_day = 400 },
  { start = "25:00", dose_ug_per_day = 400 },
  { start = "06:00", dose_ug_per_day = 5000 },
  { start = "05:00", dose_ug_per_day = 300 },
]
day = [{ start = 07:00:00, dose_ug_per_day = "0.0001" }]

[week]
monday = "night"
tuesday = "nite"
wednesday = "day"
thursday = "day"
friday = "day"
saturday = "day"

[line]
catheter_dead_volume = 150
priming_ml_per_hour = 5

[patient_bolus]
dose_ug = 25
duration_min = 15
lockout_min = 5
max_per_24h = 30

[limits]
max_rate_ug_per_day = 800
max_bolus_ug = 50
"""


def test_every_error_is_listed_with_its_toml_field_value_and_range():
    pf = programfile.loads(BROKEN)
    assert not pf.ok and pf.program is None and pf.limits is None
    got = {e.path: str(e) for e in pf.errors}
    expected = {
        "dose_ug_per_dya": ("= 3", "dose_ug_per_day"),
        "profiles.night[1].start": ('= "25:00"', '"HH:MM", 00:00..23:59'),
        "profiles.night[2].dose_ug_per_day": ("= 5000", "0.5..3000 ug/day", "at 2000 ug/mL"),
        "profiles.night[3].start": ('= "05:00"', "after the previous step's 06:00"),
        "profiles.day[0].dose_ug_per_day": ('= "0.0001"', "not a whole number of ng/day"),
        "week.tuesday": ('= "nite"', "one of the profiles: night, day"),
        "week.sunday": ("missing", "one of the profiles"),
        "line.catheter_dead_volume": ("= 150", "catheter_dead_volume_ul or catheter_dead_volume_ml"),
        "line.priming_ml_per_hour": ("= 5", "0.00025..1.25 mL/h"),
        "patient_bolus.lockout_min": ("= 5", "10..1440 min"),
        "patient_bolus.max_per_24h": ("= 30", "1..24 boluses"),
        "limits.max_24h_ug": ("missing", "1..10000 ug"),
    }
    for path, parts in expected.items():
        assert path in got, (path, got)
        for part in parts:
            assert part in got[path], (part, got[path])
    assert set(got) == set(expected)
    assert len(pf.errors) == len(expected)  # each once


def test_the_cli_lists_every_error_and_exits_2(tmp_path, capsys):
    path = tmp_path / "broken.toml"
    path.write_text(BROKEN)
    assert programfile.main(["check", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert lines[0] == "%s: 12 errors" % path
    assert lines[1:] == ["  " + str(e) for e in programfile.loads(BROKEN).errors]
    assert programfile.main(["wire", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "12 errors" in err


def test_structural_mistakes_are_named_too():
    cases = [
        (with_(base_doc(), "drug", None), "drug", "missing"),
        (with_(base_doc(), "dose_ug_per_day", None), "profiles", "give either dose_ug_per_day"),
        (with_(base_doc(), "limits", None), "limits", "max_rate_ug_per_day, max_24h_ug, max_bolus_ug"),
        (with_(base_doc(format_version=2), "drug", "baclofen"), "format_version", "format_version = 1"),
        (base_doc(week=["a"] * 7), "week", "only with [profiles]"),
        ('drug = "baclofen"\nconcentration_ug_per_ml = 500\n[profiles]\nday = []\n[limits]\n'
         'max_rate_ug_per_day = 1\nmax_24h_ug = 1\nmax_bolus_ug = 1\n', "profiles.day", "1..24 steps"),
        ('drug = "baclofen"\nconcentration_ug_per_ml = 500\n[profiles]\na = [{start="00:00", '
         'dose_ug_per_day=1}]\nb = [{start="00:00", dose_ug_per_day=1}]\n[limits]\n'
         'max_rate_ug_per_day = 1\nmax_24h_ug = 1\nmax_bolus_ug = 1\n', "week", "name one for each day"),
        ("drug = \n", "(file)", "not valid TOML"),
        ('drug = "baclofen"\nconcentration_ug_per_ml = 500\n[profiles]\nday = [{start="07:00", '
         'dose_ug_per_day=100}, {start="07:00", dose_ug_per_day=200}]\n[limits]\nmax_rate_ug_per_day = 800\n'
         'max_24h_ug = 800\nmax_bolus_ug = 50\n', "profiles.day[1].start", "after the previous step's 07:00"),
    ]
    for doc, path, words in cases:
        pf = loads(doc)
        assert errors_at(pf, path), (path, [str(e) for e in pf.errors])
        assert words in str(errors_at(pf, path)[0]), (words, str(errors_at(pf, path)[0]))


# ---- the tool's ranges are the pump's ------------------------------------------------------

def _wire_of(doc):
    pf = loads(doc)
    assert pf.ok, [str(e) for e in pf.errors]
    return pf.wire()


def _core_field_refusal(plan, board_cfg=SIM):
    # The first refusal of the core (validate, set_limits, bolus_request) for this plan.
    try:
        validate(plan["program"], board_cfg.stroke_nl, board_cfg.max_nl_per_day)
    except ProgramError as e:
        return e.reason()
    return core_takes(plan, board_cfg)


# (TOML path, wire setter, inside values, outside values) in (file text, wire value) pairs;
# the wire values are what the core is handed, the file text what a clinician writes.
def _program(key):
    def set_(plan, v):
        plan["program"][key] = v
    return set_


def _patient(key):
    def set_(plan, v):
        plan["program"]["patient_bolus"][key] = v
    return set_


def _limit(key):
    def set_(plan, v):
        plan["limits"][key] = v
    return set_


def _dose(plan, v):
    plan["program"]["profiles"]["all"][0][1] = v


def _clinician(key):
    def set_(plan, v):
        plan["actions"][0][key] = v
    return set_


GENEROUS = {"max_rate_ug_per_day": 10000, "max_24h_ug": 10000, "max_bolus_ug": 10000}
BOUNDARIES = [
    # path, setter, [(text, wire)] accepted, [(text, wire)] refused; base: 500 ug/mL, sim head
    ("concentration_ug_per_ml", _program("conc_ug_per_ml"), [("10", 10), ("5000", 5000)],
     [("9", 9), ("5001", 5001)]),
    ("dose_ug_per_day", _dose, [("0.125", 125), ("3000", 3000000)],
     [("0.124", 124), ("3000.001", 3000001)]),
    ("line.catheter_dead_volume_ml", _program("catheter_dead_volume_nl"), [("0", 0), ("2", 2000000)],
     [("2.000001", 2000001)]),
    ("line.pump_dead_volume_ul", _program("pump_dead_volume_nl"), [("0", 0), ("2000", 2000000)],
     [("2000.001", 2000001)]),
    ("line.priming_ul_per_hour", _program("priming_nl_per_hour"), [("0.25", 250), ("1250", 1250000)],
     [("0.249", 249), ("1250.001", 1250001)]),
    ("line.keep_open_ul_per_day", _program("keep_open_nl_per_day"), [("0", 0), ("0.25", 250), ("100", 100000)],
     [("0.249", 249), ("100.001", 100001)]),
    ("patient_bolus.dose_ug", _patient("dose_ng"), [("0.125", 125), ("1000", 1000000)],
     [("0.124", 124), ("1000.001", 1000001)]),
    ("patient_bolus.duration_min", _patient("duration_min"), [("1", 1), ("240", 240)], [("0", 0), ("241", 241)]),
    ("patient_bolus.lockout_min", _patient("lockout_min"), [("10", 10), ("1440", 1440)],
     [("9", 9), ("1441", 1441)]),
    ("patient_bolus.max_per_24h", _patient("max_per_24h"), [("1", 1), ("24", 24)], [("0", 0), ("25", 25)]),
    ("limits.max_rate_ug_per_day", _limit("max_rate_ng_per_day"), [("10000", 10000000)],
     [("0.999", 999), ("10000.001", 10000001)]),
    ("limits.max_bolus_ug", _limit("max_bolus_ng"), [("10000", 10000000)], [("0.999", 999), ("10000.001", 10000001)]),
    ("limits.max_24h_ug", _limit("max_24h_ng"), [("10000", 10000000)], [("0.999", 999), ("10000.001", 10000001)]),
    # 5 ug at 500 ug/mL is 40 strokes of 0.125 ug: 13 s of motor, so 1 min is enough
    ("clinician_bolus.duration_min", _clinician("duration_min"), [("1", 1), ("1440", 1440)],
     [("0", 0), ("1441", 1441)]),
]


@pytest.mark.parametrize("path, setter, inside, outside", BOUNDARIES, ids=[b[0] for b in BOUNDARIES])
def test_the_tools_ranges_are_the_pumps_at_every_boundary(path, setter, inside, outside):
    # 2 ug/day, a 5 ug bolus over 30 min and a 2.5 ug patient bolus over up to 4 h suit
    # every concentration from 10 to 5000 ug/mL, and every patient dose up to 3000 ug
    doc = base_doc(limits=dict(GENEROUS), clinician_bolus={"dose_ug": 5, "duration_min": 30},
                   patient_bolus={"dose_ug": Raw("2.5"), "duration_min": 240, "lockout_min": 180, "max_per_24h": 3})
    doc["dose_ug_per_day"] = 2
    plan = _wire_of(doc)
    for text, wire in inside:
        pf = loads(with_(doc, path, Raw(text)))
        assert pf.ok, (path, text, [str(e) for e in pf.errors])
        changed = json.loads(json.dumps(plan))
        setter(changed, wire)
        assert pf.wire() == changed, (path, text)
        assert _core_field_refusal(changed) is None, (path, wire)
    for text, wire in outside:
        pf = loads(with_(doc, path, Raw(text)))
        (e,) = errors_at(pf, path)
        assert e.value == text and "refused by" not in e.allowed, str(e)  # the tool's own check
        changed = json.loads(json.dumps(plan))
        setter(changed, wire)
        assert _core_field_refusal(changed) is not None, (path, wire)


def test_the_deliverable_dose_range_follows_the_board_and_the_concentration():
    # 50 ug/mL: the sim head (30 mL/day) reaches 1500 ug/day, the Pico's (4 mL/day) 200
    for board, top in (("sim", "1500"), ("pico", "200")):
        doc = base_doc(concentration_ug_per_ml=50, dose_ug_per_day=Raw(top))
        doc.pop("patient_bolus")
        assert loads(doc, board).ok
        over = with_(doc, "dose_ug_per_day", Raw(top + ".001"))
        (e,) = errors_at(loads(over, board), "dose_ug_per_day")
        assert "0.013..%s ug/day" % top in e.allowed, str(e)


def test_what_the_firmware_refuses_behind_the_tools_back_is_mapped_to_the_toml_field(monkeypatch):
    # Passes 2 and 3 are the backstop should the tool's own checks ever drift from the
    # firmware's: simulate that drift and the firmware's refusal still names the field.
    from tools import programformat
    monkeypatch.setattr(programformat, "PATIENT_LOCKOUT_MIN", (5, 1440))
    (e,) = loads(with_(base_doc(), "patient_bolus.lockout_min", 7)).errors
    assert e.path == "patient_bolus.lockout_min"  # the core calls it "lockout_min"
    assert ("refused by the pump's own check: patient_bolus.lockout_min=7: outside the allowed range "
            "10..1440 min") in str(e)


# ---- limits: checked here as the pump checks them ------------------------------------------

def test_a_day_night_schedule_over_the_24h_maximum_is_reported_before_a_pump_sees_it():
    doc = base_doc(concentration_ug_per_ml=2000, limits={"max_rate_ug_per_day": 800, "max_24h_ug": 500,
                                                         "max_bolus_ug": 20})
    del doc["dose_ug_per_day"]
    doc["profiles"] = {"daynight": [{"start": "07:00", "dose_ug_per_day": 400},
                                    {"start": "22:00", "dose_ug_per_day": 900}]}
    pf = loads(doc)
    got = {e.path: str(e) for e in pf.errors}
    # 15 h at 400 + 9 h at 900 = 587.5 ug; patient boluses 3 x 25 ug
    assert "up to 662.5 ug into a 24 h window (schedule 587.5 ug + patient boluses 3 x 25 ug)" in \
        got["limits.max_24h_ug"]
    assert got["profiles.daynight[1].dose_ug_per_day"].startswith("profiles.daynight[1].dose_ug_per_day = 900: "
                                                                   "above limits.max_rate_ug_per_day = 800")
    assert "above limits.max_bolus_ug = 20" in got["patient_bolus.dose_ug"]
    assert len(pf.errors) == 3
    assert pf.program is None and pf.limits is None  # nothing half-checked is handed out
    # and the pump would have refused it
    wire = _wire_of(with_(doc, "limits", dict(GENEROUS)))
    wire["limits"] = {"max_rate_ng_per_day": 800000, "max_24h_ng": 500000, "max_bolus_ng": 20000}
    assert core_takes(wire) is not None


def test_a_program_at_exactly_the_24h_maximum_is_accepted_and_one_ng_over_is_refused_by_both():
    # The pump's own checks are exact (guard.worst_24h_ng rounds once per window), so the
    # tool and a pump core agree to the nanogram, at any hour the program is set.
    doc = base_doc(concentration_ug_per_ml=2000, dose_ug_per_day=2500,
                   limits={"max_rate_ug_per_day": 2500, "max_24h_ug": 2500, "max_bolus_ug": 100})
    del doc["patient_bolus"]
    assert loads(doc).ok
    wire = _wire_of(with_(doc, "limits", GENEROUS))
    wire["limits"] = {"max_rate_ng_per_day": 2500000, "max_24h_ng": 2500000, "max_bolus_ng": 100000}
    for hour in (0, 7, 13, 23):
        assert core_takes(wire, clock_ms=hour * 3600000) is None
    (e,) = errors_at(loads(with_(doc, "limits.max_24h_ug", Raw("2499.999"))), "limits.max_24h_ug")
    assert "up to 2500 ug" in str(e), str(e)
    wire["limits"]["max_24h_ng"] = 2499999
    assert "2500 ug" in core_takes(wire)


def test_a_clinician_bolus_must_fit_the_limits_and_the_pump_head():
    doc = base_doc(clinician_bolus={"dose_ug": 150, "duration_min": 30})
    (e,) = loads(doc).errors
    assert e.path == "clinician_bolus.dose_ug" and "above limits.max_bolus_ug = 100" in str(e)
    # 100 ug at 500 ug/mL is 200 uL; the head's top rate is 30 mL/day: at least 9.6, so 10 min
    (e,) = loads(with_(doc, "clinician_bolus", {"dose_ug": 100, "duration_min": 9})).errors
    assert e.path == "clinician_bolus.duration_min" and "800 strokes need at least 10 min" in str(e)
    assert loads(with_(doc, "clinician_bolus", {"dose_ug": 100, "duration_min": 10})).ok
    (e,) = loads(with_(doc, "clinician_bolus", {"dose_ug": Raw("0.1"), "duration_min": 5})).errors
    assert "less than one stroke" in str(e) and "0.125 ug a stroke" in str(e)
    # 24 h: 200 ug/day + 3 x 25 ug + 100 ug over 300 ug
    tight = with_(with_(doc, "limits.max_24h_ug", 300), "clinician_bolus", {"dose_ug": 100, "duration_min": 30})
    (e,) = loads(tight).errors
    assert e.path == "clinician_bolus.dose_ug" and "allowed up to 25 ug" in str(e), str(e)
    assert loads(with_(tight, "clinician_bolus.dose_ug", 25)).ok


def test_a_patient_bolus_the_head_cannot_give_in_its_duration_is_refused_here_as_by_the_pump():
    # 100 ug at 500 ug/mL is 200 uL: 10 min at the head's top rate of 30 mL/day
    doc = base_doc(patient_bolus={"dose_ug": 100, "duration_min": 9, "lockout_min": 60, "max_per_24h": 2})
    (e,) = loads(doc).errors
    assert e.path == "patient_bolus.duration_min"
    assert "its 800 strokes need at least 10 min on this pump head; allowed 10..240 min" in str(e), str(e)
    plan = _wire_of(with_(doc, "patient_bolus.duration_min", 10))
    assert plan["program"]["patient_bolus"]["duration_min"] == 10
    assert core_takes(plan) is None
    plan["program"]["patient_bolus"]["duration_min"] = 9
    assert "patient_bolus.duration_min=9" in core_takes(plan)  # the pump refuses the program too


@st.composite
def schedules(draw):
    # 1-2 profiles of 1-4 steps at 2000 ug/mL, a week, an optional patient bolus
    names = draw(st.lists(st.sampled_from(["a", "b"]), min_size=1, max_size=2, unique=True))
    profiles = {}
    for name in names:
        starts = sorted(draw(st.sets(st.integers(0, 47), min_size=1, max_size=4)))
        profiles[name] = [[s * 30, draw(st.integers(1, 1600)) * 500] for s in starts]
    week = [draw(st.sampled_from(names)) for _ in range(7)]
    program = {"drug": "baclofen", "conc_ug_per_ml": 2000, "profiles": profiles, "week": week}
    if draw(st.booleans()):
        program["patient_bolus"] = {"dose_ng": draw(st.integers(1, 100)) * 1000, "duration_min": 10,
                                    "lockout_min": 60, "max_per_24h": draw(st.integers(1, 4))}
    return program


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(schedules(), st.booleans(), st.integers(-400, 400) | st.integers(-50000, 50000), st.integers(0, 47))
def test_the_tool_accepts_what_the_pump_accepts_and_refuses_what_it_refuses(program, over_rate, offset_ng, at):
    # Limits near the program's own figures (offset_ng from its exact 24 h total), so both
    # sides of every check are tried; the pump takes it at the hour `at` / 2.
    sched = validate(program, 250, 30000000).schedule
    pb = program.get("patient_bolus")
    allowance = pb["dose_ng"] * pb["max_per_24h"] if pb else 0
    top = max(r for steps in program["profiles"].values() for _, r in steps)
    limits = {"max_rate_ng_per_day": max(1000, top - 1000 * over_rate),
              "max_24h_ng": max(1000, sched.max_window_ng() + allowance + offset_ng),
              "max_bolus_ng": 100000}
    pump_verdict = core_takes({"program": program, "limits": limits, "actions": []}, clock_ms=at * 1800000)
    doc = {"drug": "baclofen", "concentration_ug_per_ml": 2000,
           "profiles": {n: [{"start": hhmm(s), "dose_ug_per_day": Raw(ug(r))}
                            for s, r in steps] for n, steps in program["profiles"].items()},
           "week": dict(zip(WEEKDAYS, program["week"])),
           "limits": {"max_rate_ug_per_day": Raw(ug(limits["max_rate_ng_per_day"])),
                      "max_24h_ug": Raw(ug(limits["max_24h_ng"])), "max_bolus_ug": 100}}
    if pb:
        doc["patient_bolus"] = {"dose_ug": Raw(ug(pb["dose_ng"])), "duration_min": 10,
                                "lockout_min": 60, "max_per_24h": pb["max_per_24h"]}
    pf = loads(doc)
    event("tool %s, pump %s" % ("accepts" if pf.ok else "refuses", "accepts" if pump_verdict is None else "refuses"))
    if pf.ok:
        assert pump_verdict is None, "the tool accepted what the pump refuses: %s" % pump_verdict
    else:
        assert pump_verdict is not None, "the tool refused what the pump accepts: %s" % pf.errors


# ---- round trip: a program written as a file comes back as the same wire form --------------

@st.composite
def programs_and_files(draw):
    # An intended wire form, and a file for it written in any of the allowed spellings.
    conc = draw(st.sampled_from([50, 500, 2000]) | st.integers(10, 5000))
    lo = (250 * conc + 999) // 1000
    hi = min(30000 * conc, 3000000)
    dose = st.integers(lo, hi)
    continuous = draw(st.booleans())
    names = ["all"] if continuous else draw(st.lists(st.sampled_from(["day", "night", "weekend", "w-2", "x_1"]),
                                                     min_size=1, max_size=3, unique=True))
    profiles = {}
    for name in names:
        if continuous:
            starts = [0]
        else:
            starts = sorted(draw(st.sets(st.integers(0, 1439), min_size=1, max_size=5)))
        profiles[name] = [[s, draw(dose)] for s in starts]
    week = [draw(st.sampled_from(names)) for _ in range(7)]
    program = {"drug": draw(st.sampled_from(["baclofen", "Lioresal", "b" * 24])), "conc_ug_per_ml": conc,
               "profiles": profiles, "week": week}
    doc = {"drug": program["drug"], "concentration_ug_per_ml": conc}

    def ug_text(ng, places=3):
        # any exact spelling: integer, TOML decimal, quoted decimal, trailing zeros
        whole, frac = divmod(ng, 10 ** places)
        style = draw(st.integers(0, 3))
        text = "%d.%0*d" % (whole, places, frac)
        if frac == 0 and style == 0:
            return Raw(str(whole))
        if style == 1:
            text = text.rstrip("0").rstrip(".") if "." in text else text
        if style == 2:
            return text  # a string
        return Raw(text if "." in text else text + ".0")

    if continuous:
        doc["dose_ug_per_day"] = ug_text(profiles["all"][0][1])
    else:
        doc["profiles"] = {}
        for name, steps in profiles.items():
            doc["profiles"][name] = [
                {"start": draw(st.sampled_from([hhmm(s), Raw(hhmm(s) + ":00")])),
                 "dose_ug_per_day": ug_text(r)} for s, r in steps]
        if len(names) > 1 or draw(st.booleans()):
            doc["week"] = draw(st.sampled_from([week, dict(zip(WEEKDAYS, week))]))
        else:
            program["week"] = [names[0]] * 7
    line = {}
    for base, wire_key, lo_nl, hi_nl in (("pump_dead_volume", "pump_dead_volume_nl", 0, 2000000),
                                         ("catheter_dead_volume", "catheter_dead_volume_nl", 0, 2000000),
                                         ("priming", "priming_nl_per_hour", 250, 1250000),
                                         ("keep_open", "keep_open_nl_per_day", 250, 100000)):
        if draw(st.booleans()):
            nl = draw(st.integers(lo_nl, hi_nl))
            program[wire_key] = nl
            suffix = {"priming": "_per_hour", "keep_open": "_per_day"}.get(base, "")
            if draw(st.booleans()):
                line[base + "_ul" + suffix] = ug_text(nl)
            else:
                line[base + "_ml" + suffix] = ug_text(nl, 6)
    if line:
        doc["line"] = line
    if draw(st.booleans()):
        # a bolus the head can give within 240 min at its top rate (pump.program)
        most_nl = SIM.max_nl_per_day * 240 // 1440
        dose_ng = draw(st.integers(lo, max(lo, min(200000, most_nl * conc // 1000))))
        fastest = fastest_bolus_min(dose_ng, conc, SIM.max_nl_per_day)
        pb = {"dose_ng": dose_ng, "duration_min": draw(st.integers(max(1, fastest), 240)),
              "lockout_min": draw(st.integers(10, 1440)), "max_per_24h": draw(st.integers(1, 24))}
        program["patient_bolus"] = pb
        doc["patient_bolus"] = {"dose_ug": ug_text(pb["dose_ng"]), "duration_min": pb["duration_min"],
                                "lockout_min": pb["lockout_min"], "max_per_24h": pb["max_per_24h"]}
    doc["limits"] = {"max_rate_ug_per_day": 10000, "max_24h_ug": 10000, "max_bolus_ug": 10000}
    return program, render(doc)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(programs_and_files())
def test_round_trip_a_program_rendered_as_a_file_loads_as_the_same_wire_form(case):
    program, text = case
    pf = programfile.loads(text)
    assert pf.ok, (text, [str(e) for e in pf.errors])
    assert pf.program == program, text
    assert pf.limits == {"max_rate_ng_per_day": 10000000, "max_24h_ng": 10000000, "max_bolus_ng": 10000000}
    assert pf.actions == []
    assert validate(pf.program, SIM.stroke_nl, SIM.max_nl_per_day).to_dict()["profiles"] == program["profiles"]


# ---- the CLI -------------------------------------------------------------------------------

def test_check_prints_the_program_exactly_as_a_clinician_reads_it(capsys):
    path = os.path.join(ROOT, "programs", "weekday-weekend-500.toml")
    assert programfile.main(["check", path]) == 0
    out, err = capsys.readouterr()
    assert err == ""
    lines = out.splitlines()
    assert lines[0] == ("%s: valid for the simulated Pico's pump head (boards/sim/config.py: 250 nL a stroke, "
                        "up to 30 mL/day)" % path)
    for expected in [
        "Drug            baclofen  500 ug/mL",
        "  profile weekend  (Saturday, Sunday)",
        "    09:00  187.5 ug/day  0.375 mL/day",
        "    06:00  300 ug/day  0.6 mL/day",
        "  Saturday   weekend       203.75 ug  0.4075 mL",
        "  Friday     weekday       260 ug  0.52 mL",
        "Limits          max rate 350 ug/day, max in 24 h 300 ug, max bolus 50 ug",
    ]:
        assert expected in lines, (expected, out)
    assert any(line.startswith("Largest 24 h    260 ug from the schedule") for line in lines), out
    assert "e+" not in out.lower() and "0000001" not in out  # no float renderings


def test_check_shows_patient_boluses_in_the_largest_24h_and_the_step_before_midnight(capsys):
    path = os.path.join(ROOT, "programs", "flex-day-night-2000.toml")
    assert programfile.main(["check", path, "--board", "pico"]) == 0
    out = capsys.readouterr().out
    assert "valid for the Pico's pump head (boards/pico/config.py: 250 nL a stroke, up to 4 mL/day)" in out
    assert "    00:00  the previous day's last step runs on (480 ug/day)" in out
    assert "    05:00  720 ug/day  0.36 mL/day" in out
    assert "Largest 24 h    460 ug from the schedule + 2 patient boluses x 20 ug = 500 ug" in out
    assert "Patient bolus   20 ug (0.01 mL) over 10 min; lockout 240 min; at most 2 in 24 h" in out


def test_wire_prints_what_the_pump_receives(capsys):
    path = os.path.join(ROOT, "programs", "screening-bolus-50ug.toml")
    assert programfile.main(["wire", path]) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == {
        "program": {"drug": "baclofen", "conc_ug_per_ml": 50, "profiles": {"all": [[0, 1000]]}, "week": ["all"] * 7},
        "limits": {"max_rate_ng_per_day": 1000, "max_24h_ng": 52000, "max_bolus_ng": 50000},
        "actions": [{"action": "clinician_bolus", "dose_ng": 50000, "duration_min": 360}]}


def test_the_module_runs_as_a_program():
    path = os.path.join(ROOT, "programs", "continuous-2000.toml")
    proc = subprocess.run([sys.executable, "-m", "tools.programfile", "check", path], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    assert "Dose            continuous  600 ug/day  0.3 mL/day" in proc.stdout
    proc = subprocess.run([sys.executable, "-m", "tools.programfile", "check", "no/such/file.toml"], cwd=ROOT,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "(file): cannot be read" in proc.stderr


# ---- the simulated Pico started from a program file ------------------------------------------

def _frames_of_bounded_run(sim):
    frames, link = frames_of_bounded_run(sim)
    link.close()
    return [f.body for f in frames]


def test_the_simulated_pico_runs_a_flex_program_file(tmp_path):
    path = os.path.join(ROOT, "programs", "flex-day-night-2000.toml")
    plan = programfile.load(path).wire()
    sim = SimPico(speed=0, days=1, program_file=path, clock="2024-01-01T06:00", status_ms=HOUR_MS,
                  flash=str(tmp_path / "flash"))
    try:
        bodies = _frames_of_bounded_run(sim)
    finally:
        sim.stop()
    # the set-up in first-boot order; alarm events (the clock is not set until the file
    # sets it) are checked apart
    events = [b for b in bodies if b["t"] == "event" and b["ev"] != "alarm"]
    names = [b["ev"] for b in events]
    assert names[:6] == ["power_up", "limits", "clock", "fill", "program", "state"], names
    clock_alarm = [b["state"] for b in bodies if b["t"] == "event" and b["ev"] == "alarm"
                   and b["code"] == "clock_not_set"]
    assert clock_alarm[:2] == ["raised", "cleared"], clock_alarm
    assert {k: events[1][k] for k in plan["limits"]} == plan["limits"]
    assert (events[2]["day"], events[2]["ms"]) == (MONDAY, 6 * HOUR_MS)
    assert {k: events[4][k] for k in plan["program"]} == plan["program"]
    statuses = [b for b in bodies if b["t"] == "status" and b["state"] == "running"]
    first = statuses[0]
    assert (first["drug"], first["conc_ug_per_ml"]) == ("baclofen", 2000)
    assert first["clock"] == [MONDAY, 7 * HOUR_MS]
    assert first["rate_ng_per_day"] == 720000  # 07:00 is in the 05:00-09:00 step
    by_clock = {tuple(s["clock"]): s["rate_ng_per_day"] for s in statuses}
    assert by_clock[(MONDAY, 11 * HOUR_MS)] == 360000  # the day step
    assert by_clock[(MONDAY, 22 * HOUR_MS)] == 480000  # the night step from 21:00 ...
    assert by_clock[(MONDAY + 1, 1 * HOUR_MS)] == 480000  # ... on past midnight
    last = statuses[-1]
    assert (last["up_day"], last["up_ms"]) == (1, 0) and last["clock"] == [MONDAY + 1, 6 * HOUR_MS]
    # any 24 h of this schedule is 460 ug: 920 strokes of 0.5 ug at 2000 ug/mL
    assert last["strokes_programmed"] == 920


def test_the_simulated_pico_gives_the_screening_bolus_of_a_program_file(tmp_path):
    path = os.path.join(ROOT, "programs", "screening-bolus-50ug.toml")
    sim = SimPico(speed=0, days=1, program_file=path, status_ms=6 * HOUR_MS, flash=str(tmp_path / "flash"))
    try:
        bodies = _frames_of_bounded_run(sim)
    finally:
        sim.stop()
    events = {b["ev"]: b for b in bodies if b["t"] == "event"}
    assert events["bolus_start"]["kind"] == "clinician" and events["bolus_start"]["requested_ng"] == 50000
    assert events["bolus_end"]["delivered_ng"] == 50000 and events["bolus_end"]["end"] == "done"
    last = [b for b in bodies if b["t"] == "status"][-1]
    assert last["dose_ug_per_day"] == 1 and last["conc_ug_per_ml"] == 50
    # 50 ug of bolus and a day of 1 ug/day basal have left the catheter tip, at most
    assert 50000 < last["delivered_ng"] <= 51000


def test_simpico_refuses_an_invalid_program_file_before_starting(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(BROKEN)
    proc = subprocess.run([sys.executable, "-m", "tools.simpico", "--program-file", str(path), "--speed", "0",
                           "--flash", str(tmp_path / "flash")], cwd=ROOT, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    assert "12 errors" in proc.stderr and "profiles.night[2].dose_ug_per_day = 5000" in proc.stderr
    assert not (tmp_path / "flash").exists()
    with pytest.raises(ValueError, match="week.tuesday"):
        SimPico(program_file=str(path))


def test_the_sims_clock_option_is_the_pumps_calendar():
    from pump.clock import DAY_MAX, WallClock
    c = WallClock()
    c.set(*parse_clock("2024-01-01T07:30"))
    assert (c.weekday(), c.ms) == (0, 450 * 60000)  # a Monday, 07:30
    assert parse_clock("2199-12-31T23:59")[0] == DAY_MAX
    for bad in ("2200-01-01T00:00", "1999-12-31T23:59", "2024-01-01", "2024-01-01T24:00"):
        with pytest.raises(ValueError, match="clock"):
            parse_clock(bad)


# ---- docs/programs.md says what the tool and the pump do ------------------------------------

DOCS = os.path.join(ROOT, "docs", "programs.md")
DOCS_BROKEN = """\
drug = "baclofen"
concentration_ug_per_ml = 2000

[profiles]
night = [
  { start = "00:00", dose_ug_per_day = 400 },
  { start = "25:00", dose_ug_per_day = 400 },
  { start = "06:00", dose_ug_per_day = 5000 },
]
day = [{ start = "07:00", dose_ug_per_day = 300 }]

[week]
monday = "night"
tuesday = "nite"
wednesday = "day"
thursday = "day"
friday = "day"
saturday = "day"
sunday = "day"

[limits]
max_rate_ug_per_day = 800
max_bolus_ug = 50
"""


def test_the_documented_example_and_error_listing_are_the_tools():
    with open(DOCS) as f:
        text = f.read()
    annotated = text.split("```toml\n", 1)[1].split("```", 1)[0]
    pf = programfile.loads(annotated)
    assert pf.ok, pf.errors
    assert pf.program["profiles"]["weekend"] == [[540, 400000], [1380, 450000]]
    listing = text.split("$ python -m tools.programfile check broken.toml\n", 1)[1].split("```", 1)[0]
    pf = programfile.loads(DOCS_BROKEN, source="broken.toml")
    assert listing.splitlines() == programfile.error_lines(pf)


def test_a_plain_key_after_a_table_header_is_explained():
    text = ('drug = "baclofen"\nconcentration_ug_per_ml = 500\n[profiles]\na = [{start = "00:00", '
            'dose_ug_per_day = 100}]\nweek = ["a", "a", "a", "a", "a", "a", "a"]\n[limits]\n'
            'max_rate_ug_per_day = 800\nmax_24h_ug = 800\nmax_bolus_ug = 50\n')
    (e,) = programfile.loads(text).errors
    assert e.path == "profiles.week" and "move it above the first [table], or write it as [week]" in str(e)


def test_setting_the_clock_reports_the_skipped_and_repeated_drug_as_documented():
    # docs/programs.md, "Setting the clock": summer time, 02:00 -> 03:00, in the night step
    # of flex-day-night-2000.toml (480 ug/day); then back in autumn.
    plan = programfile.load(os.path.join(ROOT, "programs", "flex-day-night-2000.toml")).wire()
    pump = Pump(SIM)
    pump.power_up(0)
    assert core_takes(plan) is None
    pump.set_limits(0, plan["limits"])
    pump.fill(0, 20000000, 2000)
    pump.set_clock(0, MONDAY, 2 * HOUR_MS)
    pump.set_program(0, plan["program"])
    pump.take_output()
    rate = pump.basal.rate
    assert pump.set_clock(0, MONDAY, 3 * HOUR_MS) is None
    assert pump.basal.rate == rate == 480000  # no pause, no burst: the same night step runs on
    assert pump.set_clock(0, MONDAY, 2 * HOUR_MS) is None
    clock_events = [b for b in programfile._bodies(pump) if b.get("ev") == "clock"]
    assert [(e["moved_ms"], e.get("skipped_ng"), e.get("repeated_ng")) for e in clock_events] == [
        (3600000, 20000, None), (-3600000, None, 20000)]
    with open(DOCS) as f:
        text = f.read()
    assert "`moved_ms = 3600000`, `skipped_ng = 20000`" in text
    assert "`moved_ms = -3600000`, `repeated_ng = 20000`" in text
