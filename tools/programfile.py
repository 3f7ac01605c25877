"""Program files: a clinician-readable TOML program, checked and translated for the pump.

    python -m tools.programfile check FILE [--board sim|pico]   # summary; exit 2 on errors
    python -m tools.programfile wire FILE [--board sim|pico]    # {"program", "limits", "actions"}

docs/programs.md is the format reference; programs/ holds examples.

Theory of operation. A file is read in three passes; every error any pass finds is
reported, each naming the TOML field, the value as written and what is allowed:

1. Translation (tools/programformat.py): keys, forms, exact decimals, ranges in the
   file's units, taken from the firmware's constants and the pump head's calibration.
2. The firmware's own checks, run here on CPython: pump.program.validate on the wire
   form, the limits as pump.guard.program_refusal applies them (each breach reported at
   the field that breaks it). Anything they refuse that pass 1 let through is mapped
   back to the TOML field it came from.
3. A dry run: a pump core built with the same calibration takes the limits, a clock, a
   fill, the program and the one-off actions in the order a pump takes them on first
   boot. Whatever it refuses is an error here too.

So a file this tool accepts is one the pump accepts.
"""
from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import sys
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FIRMWARE = os.path.join(ROOT, "firmware")
if _FIRMWARE not in sys.path:
    sys.path.append(_FIRMWARE)  # appended: firmware module names must not shadow the host's

from pump import guard, wire  # noqa: E402
from pump import program as core  # noqa: E402
from pump.core import Pump, PumpConfig  # noqa: E402
from pump.limits import Limits  # noqa: E402
from tools.programformat import FieldError, Translation, translate  # noqa: E402
from tools.programreport import summary, ug, wire_json  # noqa: E402

# The pump heads a file can be checked against: the board configs the firmware runs with.
BOARDS = {
    "sim": ("boards/sim/config.py", "the simulated Pico's pump head"),
    "pico": ("boards/pico/config.py", "the Pico's pump head"),
}
# A refusal by a hard limit (pump.guard) names the limit; these are its wire fields.
_LIMIT_FIELDS = {"max_rate": "max_rate_ng_per_day", "max_24h": "max_24h_ng", "max_bolus": "max_bolus_ng"}
# The wall clock of the dry run: 2024-01-01 00:00, a Monday (days count from 2000-01-01).
DRY_RUN_DAY = (datetime.date(2024, 1, 1) - datetime.date(2000, 1, 1)).days


@dataclass
class Board:
    name: str
    config_path: str
    label: str
    head: PumpConfig


@dataclass
class ProgramFile(Translation):
    source: str = "<text>"
    board: Board | None = None
    checked: core.Program | None = None  # the firmware's own reading of `program`

    @property
    def ok(self) -> bool:
        return not self.errors and self.program is not None

    def wire(self) -> dict[str, Any]:
        # what the pump receives: set_limits, then set_program, then each action
        return {"program": self.program, "limits": self.limits, "actions": self.actions}


class ProgramFileError(ValueError):
    def __init__(self, pf: ProgramFile) -> None:
        self.errors = pf.errors
        super().__init__("\n".join(error_lines(pf)))


def error_lines(pf: ProgramFile) -> list[str]:
    n = len(pf.errors)
    return ["%s: %d error%s" % (pf.source, n, "" if n == 1 else "s")] + ["  " + str(e) for e in pf.errors]


def _load_module(name: str, path: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, path
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_boards: dict[str, Board] = {}


def board(name: str = "sim") -> Board:
    # The pump head's calibration exactly as the firmware derives it (firmware/app.py
    # pump_config) from the board's config file. Both are loaded by path: importing the
    # board package would pull in its hardware adapters.
    if name not in BOARDS:
        raise ValueError("board %r: one of %s" % (name, ", ".join(BOARDS)))
    if name not in _boards:
        rel, label = BOARDS[name]
        app = _load_module("_programfile_app", os.path.join(_FIRMWARE, "app.py"))
        config = _load_module("_programfile_%s_config" % name, os.path.join(ROOT, rel))
        _boards[name] = Board(name, rel, label, app.pump_config(config))
    return _boards[name]


# ---- entry points -------------------------------------------------------------------------

def loads(text: str, board_name: str = "sim", source: str = "<text>") -> ProgramFile:
    b = board(board_name)
    pf = ProgramFile(source=source, board=b)
    translate(text, b.head, into=pf)
    if pf.program is not None and pf.limits is not None and not pf.errors:
        _firmware_checks(pf)
    if pf.errors:
        # nothing half-checked is handed out
        pf.checked, pf.program, pf.limits, pf.actions = None, None, None, []
    return pf


def load(path: str, board_name: str = "sim") -> ProgramFile:
    try:
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except (OSError, UnicodeDecodeError) as e:
        pf = ProgramFile(source=path, board=board(board_name))
        why = "cannot be read: %s" % (e.strerror or e) if isinstance(e, OSError) else "not UTF-8 text: %s" % e
        pf.errors.append(FieldError("(file)", None, why))
        return pf
    return loads(text, board_name, path)


def load_checked(path: str, board_name: str = "sim") -> ProgramFile:
    # load(), raising ProgramFileError (every error in its message) unless the file is valid
    pf = load(path, board_name)
    if not pf.ok:
        raise ProgramFileError(pf)
    return pf


# ---- passes 2 and 3: the firmware's own checks --------------------------------------------

def _firmware_checks(pf: ProgramFile) -> None:
    assert pf.board is not None and pf.program is not None and pf.limits is not None
    head = pf.board.head
    try:
        program = core.validate(pf.program, head.stroke_nl, head.max_nl_per_day)
    except core.ProgramError as e:
        pf.errors.append(_mapped(pf, e.field, "refused by the pump's own check: " + e.reason()))
        return
    pf.checked = program
    limits = Limits()
    for key, value in pf.limits.items():
        setattr(limits, key, value)
    found = _limit_errors(pf, program, limits)
    refusal = guard.program_refusal(program, limits)
    if refusal and not found:
        # the firmware refuses what this tool let through: say it as the firmware does
        pf.errors.append(_mapped(pf, _LIMIT_FIELDS.get(refusal[0]), "refused by the pump's own check: " + refusal[1]))
    if not pf.errors:
        _dry_run(pf)


def _mapped(pf: ProgramFile, wire_field: str | None, reason: str) -> FieldError:
    # A firmware field name (wire units) back to the TOML path it was translated from;
    # failing that, the nearest enclosing field that was.
    name = wire_field or ""
    while name and name not in pf.origin:
        cut = max(name.rfind("."), name.rfind("["))
        name = name[:cut] if cut > 0 else ""
    return FieldError(pf.origin.get(name, wire_field or "(program)"), None, reason)


def _limit_errors(pf: ProgramFile, program: core.Program, limits: Limits) -> bool:
    # Every way the program breaks the file's limits, each at the field that breaks it
    # (guard.program_refusal stops at the first).
    assert pf.program is not None
    before = len(pf.errors)

    def error(path: str, allowed: str) -> None:
        pf.errors.append(FieldError(path, pf.written[path], allowed))

    max_rate = limits.max_rate_ng_per_day
    for name, steps in pf.program["profiles"].items():
        for i, (_, dose) in enumerate(steps):
            if dose > max_rate:
                error(pf.origin["profiles.%s[%d].dose_ng_per_day" % (name, i)],
                      "above limits.max_rate_ug_per_day = %s; allowed up to %s ug/day" % (ug(max_rate), ug(max_rate)))
    max_bolus = "above limits.max_bolus_ug = %s; allowed up to %s ug" % (ug(limits.max_bolus_ng),
                                                                        ug(limits.max_bolus_ng))
    pb = program.patient
    allowance = 0
    if pb is not None:
        allowance = pb.dose_ng * pb.max_per_24h
        if pb.dose_ng > limits.max_bolus_ng:
            error("patient_bolus.dose_ug", max_bolus)
    window = program.schedule.max_window_ng()
    cap = limits.max_24h_ng
    what = "schedule %s ug" % ug(window)
    if pb is not None:
        what += " + patient boluses %d x %s ug" % (pb.max_per_24h, ug(pb.dose_ng))
    if window + allowance > cap:
        error("limits.max_24h_ug", "the program can put up to %s ug into a 24 h window (%s); allowed: at least "
              "%s ug, or lower doses" % (ug(window + allowance), what, ug(window + allowance)))
    for action in pf.actions:
        dose = action["dose_ng"]
        # as the pump checks a bolus, at any time of day: its estimate of the basal over
        # the next 24 h, every patient bolus still allowed, and this one
        top = window + allowance + dose
        if dose > limits.max_bolus_ng:
            error("clinician_bolus.dose_ug", max_bolus)
        elif top > cap:
            error("clinician_bolus.dose_ug", "with the program's %s it would make up to %s ug in a 24 h window, "
                  "above limits.max_24h_ug = %s; allowed up to %s ug"
                  % (what, ug(top), ug(cap), ug(max(0, cap - (top - dose)))))
    return len(pf.errors) > before


def _dry_run(pf: ProgramFile) -> None:
    # A pump core takes the file as a pump does on first boot (firmware/app.py provision):
    # limits, clock, a full reservoir, program, one-off actions. Its refusal is the last word.
    assert pf.board is not None and pf.program is not None
    head = pf.board.head
    pump = Pump(head)
    pump.power_up(0)
    program = pf.program
    steps: list[tuple[str, Callable[[], str | None]]] = [
        ("limits", partial(pump.set_limits, 0, pf.limits)),
        ("clock", partial(pump.set_clock, 0, DRY_RUN_DAY, 0)),
        ("fill", partial(pump.fill, 0, head.reservoir_capacity_nl, program["conc_ug_per_ml"])),
        ("program", partial(pump.set_program, 0, program))]
    for action in pf.actions:
        steps.append(("clinician_bolus", partial(pump.bolus_request, 0, action["dose_ng"], action["duration_min"])))
    for what, op in steps:
        reason = op()
        if reason is None:
            continue
        refused = [body for body in _bodies(pump) if body.get("ev") == "refused"]
        field_name = refused[-1].get("field") if refused else None
        if field_name is None and refused:
            # a refusal by a limit names the limit: the file's field for it
            field_name = _LIMIT_FIELDS.get(str(refused[-1].get("limit")))
        error = _mapped(pf, field_name, "refused by a pump core (dry run): " + reason)
        if what == "clinician_bolus":
            error.path = "clinician_bolus." + ("duration_min" if field_name == "duration_min" else "dose_ug")
        pf.errors.append(error)
        return


def _bodies(pump: Pump) -> list[dict[str, Any]]:
    reader = wire.Reader()
    return [f.body for frame in pump.take_output() for f in reader.feed(frame)]


# ---- the command line ---------------------------------------------------------------------

def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tools.programfile",
                                 description="Check a TOML program file and translate it for the pump "
                                             "(docs/programs.md).")
    sub = ap.add_subparsers(dest="command", required=True)
    for name, text in (("check", "print a summary of the program; exit 2 listing every error"),
                       ("wire", "print what the pump receives, as JSON: {program, limits, actions}")):
        sp = sub.add_parser(name, help=text, description=text)
        sp.add_argument("file")
        sp.add_argument("--board", choices=sorted(BOARDS), default="sim",
                        help="the pump head whose calibration the program must suit (default %(default)s)")
    opts = ap.parse_args(argv)
    pf = load(opts.file, opts.board)
    if not pf.ok:
        print("\n".join(error_lines(pf)), file=sys.stderr)
        return 2
    try:
        print(wire_json(pf.wire()) if opts.command == "wire" else "\n".join(summary(pf)), flush=True)
    except BrokenPipeError:
        # `| head` closed the pipe early: not an error of the file
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0


if __name__ == "__main__":
    sys.exit(main())
