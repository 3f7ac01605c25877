"""The console's commands that change therapy, read the pump's settings and its log, and
manage keys: what `python -m tools.console program|bolus|refill|fill|prime|titrate|ack|
silence|clock|alarm-settings|log|plot|info|provision|keys` do once the console has a link.

Each cmd_* function takes the parsed options, the link (tools.link.Link, with a key
store) and a Ui (prompts, confirmations, output), and returns the exit status. User
errors are raised as UserError and pump refusals as tools.link.CommandError; the
console's main() turns both into a message and an exit status, never a traceback.
docs/console.md is the user's guide.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from typing import Any, Callable, TextIO

from tools import logformat
from tools.keystore import ROLES, KeyStore, KeyStoreError, fresh_keys, keys_file
from tools.link import CommandError, Link, Reply, RequestTimeout, wait_text
from tools.programreport import hhmm, ug, ul

EXIT_OK = 0
EXIT_USAGE = 2  # bad options, no port, no answer, an invalid program file, no keys
EXIT_REFUSED = 3  # the pump refused the command or did not authenticate it
EXIT_CANCELLED = 4  # the user said no at a confirmation

CLINICIAN, PATIENT = ROLES
DAY_MS = 86400000
# A change of the daily dose beyond this asks for the new dose to be typed, as the
# programmers of implanted pumps ask for a value to be entered again; a doubling or a
# halving is beyond it whatever the setting. Baclofen's usual intrathecal maintenance
# range (Lioresal Intrathecal labelling; Saulino et al. 2016): outside it, the same.
LARGE_CHANGE_PERCENT = 20
USUAL_DAILY_NG = {"baclofen": (20000, 1000000)}
CLOCK_EPOCH = datetime.date(2000, 1, 1)
RESIDUAL_TOLERANCE_NL = 500000  # docs/alarms.md: max(0.5 mL, a tenth of the expected)
EVENT_WAIT_S = 2.0  # after a result, how long to wait for the events it announces
LIMIT_FIELDS = (("max_rate_ng_per_day", "Max rate", "µg/day"),
                ("max_24h_ng", "Max in any 24 h", "µg"),
                ("max_bolus_ng", "Max bolus", "µg"))
WEEKDAY_NAMES = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


class UserError(Exception):
    """Something the user can fix: the message says what."""

    def __init__(self, message: str, status: int = EXIT_USAGE) -> None:
        super().__init__(message)
        self.status = status


class Cancelled(Exception):
    """The user answered no."""


# ---- talking to the user ------------------------------------------------------------------

class Ui:
    # Output, prompts and confirmations. With --json, stdout carries one JSON object and
    # everything meant for a person goes to stderr.
    def __init__(self, opts: argparse.Namespace, stdin: TextIO | None = None,
                 stdout: TextIO | None = None, stderr: TextIO | None = None) -> None:
        self.json = bool(getattr(opts, "json", False))
        self.yes = bool(getattr(opts, "yes", False))
        self.stdin = stdin or sys.stdin
        self.stdout = stdout or sys.stdout
        self.stderr = stderr or sys.stderr

    def say(self, text: str = "") -> None:
        out = self.stderr if self.json else self.stdout
        out.write(text + "\n")
        out.flush()

    def note(self, text: str) -> None:
        self.stderr.write(text + "\n")
        self.stderr.flush()

    def emit(self, obj: dict[str, Any]) -> None:
        # the one JSON object of a --json run
        if self.json:
            self.stdout.write(json.dumps(obj, sort_keys=True) + "\n")
            self.stdout.flush()

    def ask(self, prompt: str, option: str | None = None) -> str:
        self.stderr.write(prompt)
        self.stderr.flush()
        line = self.stdin.readline()
        if not line:
            self.stderr.write("\n")
            raise UserError("no answer to %r: standard input is closed%s" % (
                prompt.strip(), "; give %s" % option if option else ""))
        return line.strip()

    def confirm(self, question: str) -> None:
        # Raises Cancelled unless the answer is yes (or --yes was given).
        if self.yes:
            return
        answer = self.ask("%s [y/N] " % question, "--yes to confirm without asking")
        if answer.lower() not in ("y", "yes"):
            raise Cancelled()

    def progress(self, label: str) -> "Progress":
        return Progress(label, self.stderr)


class Progress:
    # A byte count towards a total on stderr: redrawn in place on a terminal, a line
    # every quarter otherwise (logs, CI).
    def __init__(self, label: str, out: TextIO) -> None:
        self.label = label
        self.out = out
        self.tty = out.isatty()
        self._drawn_at = 0.0
        self._quarter = -1
        self.done = 0
        self.total: int | None = None

    def __call__(self, done: int, total: int | None) -> None:
        self.done, self.total = done, total
        if self.tty:
            now = time.monotonic()
            if now - self._drawn_at >= 0.1 or (total is not None and done >= total):
                self._drawn_at = now
                self.out.write("\r" + self.text() + "   ")
                self.out.flush()
        elif total:
            quarter = min(4, done * 4 // total)
            if quarter != self._quarter:
                self._quarter = quarter
                self.out.write(self.text() + "\n")
                self.out.flush()

    def text(self) -> str:
        if self.total:
            return "%s: %s of %s (%d%%)" % (self.label, kib(self.done), kib(self.total),
                                          min(100, self.done * 100 // self.total))
        return "%s: %s" % (self.label, kib(self.done))

    def finish(self) -> None:
        if self.tty:
            self.out.write("\n")
            self.out.flush()


def kib(n: int) -> str:
    return "%d bytes" % n if n < 1024 else "%.1f KiB" % (n / 1024)


# ---- numbers as a clinician types them ------------------------------------------------------

def parse_amount(text: Any, places: int, unit: str, what: str, allow_zero: bool = True) -> int:
    # "12.5" in a unit with `places` decimals below it -> the integer in that smaller unit
    # (mL -> nL: places 6; ug -> ng: 3), exactly, or UserError saying what is allowed.
    try:
        d = Decimal(str(text).strip())
    except InvalidOperation:
        raise UserError("%s %r: expected a number of %s, e.g. 12.5" % (what, text, unit)) from None
    if not d.is_finite() or d < 0 or (d == 0 and not allow_zero):
        raise UserError("%s %r: expected a number of %s above 0" % (what, text, unit))
    scaled = d.scaleb(places)
    if scaled != scaled.to_integral_value():
        raise UserError("%s %r: at most %d decimals in %s (the pump counts %s)" % (
            what, text, places, unit, {6: "whole nL", 3: "whole ng"}.get(places, "whole units")))
    return int(scaled)


def parse_whole(text: Any, what: str, lo: int, hi: int) -> int:
    try:
        n = int(str(text).strip())
    except ValueError:
        raise UserError("%s %r: expected a whole number %d..%d" % (what, text, lo, hi)) from None
    if not lo <= n <= hi:
        raise UserError("%s %d: expected %d..%d" % (what, n, lo, hi))
    return n


def ml(nl: int) -> str:
    from tools.dashboard import decimal
    return decimal(nl, 6) + " mL"


def signed_ml(nl: int) -> str:
    return ("+" if nl > 0 else "") + ml(nl)


def clock_text(clock: Any) -> str:
    # [day, ms] (days since 2000-01-01, ms after midnight) as a date and time
    if not isinstance(clock, (list, tuple)) or len(clock) != 2:
        return "not set"
    day, ms = clock
    date = CLOCK_EPOCH + datetime.timedelta(days=day)
    return "%s %s" % (date.isoformat(), hhmm(ms // 60000))


def parse_when(text: str, now: datetime.datetime | None = None) -> tuple[int, int]:
    # "now" (this computer's local time, to the minute) or YYYY-MM-DDTHH:MM -> (day, ms)
    from tools.simpico import parse_clock
    if text == "now":
        now = now or datetime.datetime.now()
        text = now.strftime("%Y-%m-%dT%H:%M")
    try:
        return parse_clock(text)
    except ValueError as e:
        raise UserError(str(e)) from None


# ---- the pump's answers -------------------------------------------------------------------

def events_of(reply: Reply) -> list[dict[str, Any]]:
    return [f.body for f in reply.frames if f.body.get("t") == "event"]


def command_events(link: Link, reply: Reply, want: str | None = None,
                   timeout_s: float = EVENT_WAIT_S) -> list[dict[str, Any]]:
    # The events that came with a command's result; if `want` is not among them yet,
    # what arrives until it does (the pump may send a command's events after its result).
    events = events_of(reply)
    if want and not any(e.get("ev") == want for e in events):
        link.wait_for(lambda b: b.get("t") == "event" and b.get("ev") == want, timeout_s,
                      on_frame=lambda b: events.append(b) if b.get("t") == "event" else None)
    return events


def find(events: list[dict[str, Any]], ev: str) -> dict[str, Any] | None:
    for e in reversed(events):
        if e.get("ev") == ev:
            return e
    return None


def pick_role(opts: argparse.Namespace, link: Link, allowed: tuple[str, ...]) -> str:
    # --role, else the first allowed role this console holds a key for (a patient's
    # console holds only the patient key).
    role = getattr(opts, "role", None)
    if role:
        return str(role)
    roles: list[str] = []
    if link.keys is not None and link.dev:
        try:
            entry = link.keys.load(link.dev)
        except KeyStoreError:
            entry = None
        roles = entry.roles if entry else []
    for r in allowed:
        if r in roles:
            return r
    return allowed[0]


def alarm_text(alarm: Any) -> str:
    # [code, priority, acknowledged, condition_present] (docs/protocol.md)
    if not isinstance(alarm, (list, tuple)) or len(alarm) < 2:
        return str(alarm)
    code, priority = alarm[0], alarm[1]
    notes = []
    if len(alarm) > 2 and alarm[2]:
        notes.append("acknowledged")
    if len(alarm) > 3 and not alarm[3]:
        notes.append("condition gone")
    return "%s (%s%s)" % (code, priority, ", " + ", ".join(notes) if notes else "")


def status_extra(status: dict[str, Any]) -> list[tuple[str, str]]:
    # Rows `status` adds to the dashboard's: a lockout of authenticated commands.
    rows: list[tuple[str, str]] = []
    auth = status.get("auth")
    if isinstance(auth, dict) and auth.get("locked_ms"):
        rows.append(("Auth", "locked out for %s after %s failures" % (wait_text(auth["locked_ms"]),
                                                                     auth.get("failures"))))
    return rows


def bolus_text(b: dict[str, Any], status: dict[str, Any] | None = None) -> str:
    # A running bolus as a person follows it; a bridge has no strokes of its own (the
    # basal gives the old drug at its strength): what is left of it, and about how long.
    if b.get("kind") == "bridge":
        from tools.dashboard import bolus_row
        return bolus_row(dict(status or {}, bolus=b)) or "bridge"
    text = "%s: %s of %s strokes confirmed" % (b.get("kind"), b.get("strokes_confirmed"), b.get("strokes_total"))
    if b.get("requested_ng"):
        text += ", %s of %s µg" % (ug(b.get("delivered_ng") or 0), ug(b["requested_ng"]))
    return text


# ---- info ---------------------------------------------------------------------------------

def cmd_info(opts: argparse.Namespace, link: Link, ui: Ui) -> int:
    hello = link.hello(opts.timeout)
    if not hello:
        raise UserError("the pump on %s does not answer hello: its firmware predates commands" % link.port)
    dev = link.dev or "?"
    store = link.keys
    entry = None
    store_error = None
    if store is not None:
        try:
            entry = store.load(dev)
        except KeyStoreError as e:
            store_error = str(e)
    ui.emit({"hello": hello, "key_store": store.path(dev) if store else None,
             "store_roles": entry.roles if entry else [], "store_ctr": entry.ctr if entry else {}})
    ui.say("Pump %s on %s" % (dev, link.port))
    ui.say("%-15s %s" % ("Firmware", "%s (protocol %s, frames up to %s bytes)" % (
        hello.get("firmware"), hello.get("version"), hello.get("max_frame"))))
    roles = hello.get("roles") or []
    ui.say("%-15s %s" % ("Keys on pump", ", ".join(roles) if roles else "none: provision the pump"))
    ctr = hello.get("ctr") or {}
    ui.say("%-15s %s" % ("Counters", ", ".join("%s %s" % (r, ctr.get(r, 0)) for r in ROLES)))
    if store is None:
        ui.say("%-15s %s" % ("Key store", "none"))
    elif store_error:
        ui.say("%-15s %s" % ("Key store", store_error))
    elif entry is None:
        ui.say("%-15s %s" % ("Key store", "%s: no keys for this pump" % store.directory))
    else:
        ui.say("%-15s %s: %s" % ("Key store", store.path(dev), ", ".join(entry.roles) or "no keys"))
    return EXIT_OK


# ---- program ------------------------------------------------------------------------------

def load_program_file(path: str, board: str) -> Any:
    # The file checked as the pump will check it; every error listed in a UserError.
    from tools import programfile
    pf = programfile.load(path, board)
    if not pf.ok:
        raise UserError("\n".join(programfile.error_lines(pf)) +
                        "\nNothing was sent: fix the file (python -m tools.programfile check %s)" % path)
    return pf


def profile_text(steps: list[Any]) -> str:
    return ", ".join("%s %s µg/day" % (hhmm(m), ug(dose)) for m, dose in steps)


def schedule_lines(program: dict[str, Any]) -> list[str]:
    profiles = program.get("profiles") or {}
    week = list(program.get("week") or [])
    if len(profiles) == 1:
        (name, steps), = profiles.items()
        if len(steps) == 1:
            return ["%s µg/day, all day, every day" % ug(steps[0][1])]
        return ["every day: " + profile_text(steps)]
    lines = ["%s: %s" % (name, profile_text(steps)) for name, steps in sorted(profiles.items())]
    if week:
        lines.append("week: " + ", ".join("%s %s" % (d, n) for d, n in zip(WEEKDAY_NAMES, week)))
    return lines


def patient_text(pb: Any) -> str:
    if not pb:
        return "none"
    return "%s µg over %d min, lockout %d min, at most %d in 24 h" % (
        ug(pb["dose_ng"]), pb["duration_min"], pb["lockout_min"], pb["max_per_24h"])


_PROGRAM_FIELDS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("drug", "Drug", str),
    ("conc_ug_per_ml", "Concentration", lambda v: "%s µg/mL" % v),
    ("pump_dead_volume_nl", "Pump dead volume", lambda v: "%s µL" % ul(v)),
    ("catheter_dead_volume_nl", "Catheter dead volume", lambda v: "%s µL" % ul(v)),
    ("priming_nl_per_hour", "Priming rate", lambda v: "%s µL/h" % ul(v)),
    ("keep_open_nl_per_day", "Keep-open rate", lambda v: "%s µL/day" % ul(v)),
    ("patient_bolus", "Patient bolus", patient_text),
)


def _same_schedule(a: dict[str, Any], b: dict[str, Any]) -> bool:
    def norm(p: dict[str, Any]) -> Any:
        profiles = {k: [list(s) for s in v] for k, v in (p.get("profiles") or {}).items()}
        return profiles, list(p.get("week") or [])
    return bool(norm(a) == norm(b))


def program_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    # What changes, field by field, in a clinician's units; [] when nothing does.
    if old is None:
        lines = ["The pump has no program. New program:"]
        lines += ["  %-22s %s" % (label, fmt(new.get(key))) for key, label, fmt in _PROGRAM_FIELDS[:2]]
        lines += ["  %-22s %s" % ("Schedule" if i == 0 else "", s) for i, s in enumerate(schedule_lines(new))]
        lines += ["  %-22s %s" % (label, fmt(new.get(key))) for key, label, fmt in _PROGRAM_FIELDS[2:]
                  if key in new or key == "patient_bolus"]
        return lines
    lines = []
    for key, label, fmt in _PROGRAM_FIELDS[:2]:
        if old.get(key) != new.get(key):
            lines.append("  %-22s %s  ->  %s" % (label, fmt(old.get(key)), fmt(new.get(key))))
    if not _same_schedule(old, new):
        lines.append("  Schedule now:")
        lines += ["    " + s for s in schedule_lines(old)]
        lines.append("  Schedule new:")
        lines += ["    " + s for s in schedule_lines(new)]
    for key, label, fmt in _PROGRAM_FIELDS[2:]:
        if key in new and old.get(key) != new.get(key):
            lines.append("  %-22s %s  ->  %s" % (label, fmt(old.get(key)), fmt(new.get(key))))
    return lines


def limits_diff(old: dict[str, Any] | None, new: dict[str, Any]) -> list[str]:
    lines = []
    for key, label, unit in LIMIT_FIELDS:
        a, b = (old or {}).get(key), new[key]
        if a != b:
            lines.append("  %-22s %s  ->  %s %s" % (label, "?" if a is None else ug(a), ug(b), unit))
    return lines


def program_plan(old_program: dict[str, Any] | None, old_limits: dict[str, Any] | None,
                 new_program: dict[str, Any], new_limits: dict[str, Any],
                 program_changed: bool) -> list[tuple[str, dict[str, Any]]]:
    # The commands, in an order the pump accepts at every step: its limits must admit
    # the program running at each moment. Looser limits go first, tighter ones after the
    # program; mixed ones pass through the looser of both.
    steps: list[tuple[str, dict[str, Any]]] = []
    limits_changed = old_limits is None or any(old_limits.get(k) != new_limits[k] for k, _, _ in LIMIT_FIELDS)
    if not limits_changed:
        return [("program", new_program)] if program_changed else []
    if not program_changed or old_program is None:
        return [("limits", dict(new_limits))] + ([("program", new_program)] if program_changed else [])
    assert old_limits is not None
    keys = [k for k, _, _ in LIMIT_FIELDS]
    if all(new_limits[k] >= old_limits[k] for k in keys):
        steps = [("limits", dict(new_limits)), ("program", new_program)]
    elif all(new_limits[k] <= old_limits[k] for k in keys):
        steps = [("program", new_program), ("limits", dict(new_limits))]
    else:
        looser = {k: max(new_limits[k], old_limits[k]) for k in keys}
        steps = [("limits", looser), ("program", new_program), ("limits", dict(new_limits))]
    return steps


def board_of(dev: str | None) -> str:
    # the pump head a device id names: the simulated Pico's are "sim-<seed>"
    return "sim" if (dev or "").startswith("sim-") else "pico"


def _ratio_text(old: Any, new: Any) -> str:
    # "x5.2, +420 %" (rounded toward no change, so a change is never shown larger)
    from fractions import Fraction
    r = Fraction(new) / Fraction(old)
    pct = (r - 1) * 100
    pct_int = int(pct) if pct >= 0 else -int(-pct)
    return "x%s, %+d %%" % (("%.2f" % (int(r * 100) / 100)).rstrip("0").rstrip("."), pct_int)


def dose_change_findings(old_program: dict[str, Any] | None, new_program: dict[str, Any]) -> tuple[list[str], Any]:
    """What makes a change of program ask for a second, typed confirmation: a relative
    change of any weekday's daily dose beyond LARGE_CHANGE_PERCENT (always a doubling or a
    halving), or a daily dose outside the drug's usual range. Returns (the reasons, the
    new daily dose (ng) to type: that of the day that changes most)."""
    from tools import clinical
    new = clinical.weekday_daily_ng(new_program)
    reasons: list[str] = []
    pick = max(new)
    if old_program:
        old = clinical.weekday_daily_ng(old_program)
        worst = None
        for d in range(7):
            if not old[d]:
                continue
            change = abs(new[d] - old[d]) / old[d]
            if worst is None or change > worst[0]:
                worst = (change, d)
        if worst is not None:
            change, d = worst
            large = change * 100 > LARGE_CHANGE_PERCENT or new[d] >= 2 * old[d] or 2 * new[d] <= old[d]
            if large:
                days = "" if len(set(old)) == 1 and len(set(new)) == 1 else " on %s" % WEEKDAY_NAMES[d]
                reasons.append("the daily dose%s changes from %s to %s µg/day (%s), more than %d %%" % (
                    days, ug(old[d]), ug(new[d]), _ratio_text(old[d], new[d]), LARGE_CHANGE_PERCENT))
                pick = new[d]
    usual = USUAL_DAILY_NG.get(str(new_program.get("drug") or "").lower())
    if usual:
        lo, hi = usual
        out_of = [x for x in new if not lo <= x <= hi]
        if out_of:
            x = max(out_of) if max(out_of) > hi else min(out_of)
            reasons.append("%s µg/day is outside the usual range of intrathecal %s, %s-%s µg/day" % (
                ug(x), new_program.get("drug"), ug(lo), ug(hi)))
            if not reasons[:-1]:
                pick = x
    return reasons, pick


def confirm_dose_change(ui: Ui, opts: argparse.Namespace, old_program: dict[str, Any] | None,
                        new_program: dict[str, Any]) -> None:
    # The second confirmation of a large change: the new daily dose typed again (or
    # given with --confirm-daily-dose). Cancelled (nothing sent) when it does not match.
    from fractions import Fraction
    reasons, dose = dose_change_findings(old_program, new_program)
    if not reasons:
        return
    for r in reasons:
        ui.say("CAUTION: " + r + ".")
    given = getattr(opts, "confirm_daily_dose", None)
    if given is None and ui.yes:
        raise UserError("a large change of the daily dose is not sent on --yes alone: confirm it with "
                        "--confirm-daily-dose %s (the new daily dose, µg/day). Nothing was sent" % ug(dose).lstrip("~"))
    if given is None:
        given = ui.ask("Type the new daily dose in µg/day to confirm this change: ", "--confirm-daily-dose")
    try:
        typed = parse_amount(given, 3, "µg/day", "the daily dose typed", allow_zero=False)
    except UserError as e:
        ui.note(str(e))
        raise Cancelled() from None
    if abs(Fraction(typed) - Fraction(dose)) >= 1:
        ui.note("%s µg/day is not the new daily dose (%s µg/day)." % (ug(typed), ug(dose).lstrip("~")))
        raise Cancelled()


def cmd_program(opts: argparse.Namespace, link: Link, ui: Ui, pf: Any = None) -> int:
    if pf is None:
        link.hello(opts.timeout)
        pf = load_program_file(opts.file, board_of(link.dev))
    assert pf.checked is not None and pf.limits is not None
    new_program = pf.checked.to_dict()  # the pump's own reading, defaults filled in
    settings = link.settings(opts.timeout)
    status = link.status(opts.timeout)
    old_program = settings.get("program")
    old_limits = settings.get("limits")
    program_changed = old_program is None or old_program != new_program
    diff = program_diff(old_program, new_program) if program_changed else []
    ldiff = limits_diff(old_limits, pf.limits)
    actions = [] if (opts.no_bolus or not program_changed) else list(pf.actions)
    title = pf.description if getattr(pf, "description", None) else ""
    ui.say("Program file %s%s, checked for %s" % (opts.file, "  (%s)" % title if title else "",
                                                   pf.board.label if pf.board else "the pump head"))
    if not diff and not ldiff and not actions:
        ui.say("The pump already runs this program with these limits: nothing to send.")
        ui.emit({"ok": True, "cmd": "program", "changed": False, "sent": []})
        return EXIT_OK
    if diff:
        ui.say("Program changes:" if old_program is not None else "")
        for line in diff:
            ui.say(line)
    else:
        ui.say("Program: unchanged")
    if ldiff:
        ui.say("Hard limits change:")
        for line in ldiff:
            ui.say(line)
    for a in actions:
        ui.say("Then a clinician bolus of %s µg over %d min (the file's [clinician_bolus])" % (
            ug(a["dose_ng"]), a["duration_min"]))
    # What the pump would refuse half-way: say it now, before anything is sent.
    conc = status.get("conc_ug_per_ml") or 0
    if program_changed and conc and conc != new_program["conc_ug_per_ml"]:
        raise UserError("the reservoir holds %d µg/mL and the program is for %d µg/mL: refill with the new "
                        "concentration first (console refill ... --bridge). Nothing was sent"
                        % (conc, new_program["conc_ug_per_ml"]))
    flex = sum(len(s) for s in new_program["profiles"].values()) > 1 or len(set(new_program["week"])) > 1
    if program_changed and flex and settings.get("clock") is None:
        raise UserError("a flex schedule needs the pump's clock: set it first (console clock set now). "
                        "Nothing was sent")
    ui.confirm("Send this to the pump?")
    if program_changed:
        confirm_dose_change(ui, opts, old_program, new_program)
    steps = program_plan(old_program, old_limits, pf.program, pf.limits, program_changed)
    steps += [("bolus", {"dose_ng": a["dose_ng"], "duration_min": a["duration_min"]}) for a in actions]
    sent: list[dict[str, Any]] = []
    for i, (cmd, args) in enumerate(steps):
        try:
            reply = link.command(cmd, args, CLINICIAN, opts.timeout)
        except CommandError as e:
            done = ", ".join(s["cmd"] for s in sent) or "nothing"
            raise CommandError("%s\nDone before this: %s; not sent: %s" % (
                e, done, ", ".join(c for c, _ in steps[i + 1:]) or "nothing"), e.result) from None
        events = command_events(link, reply, {"program": "program", "limits": "limits",
                                              "bolus": "bolus_start"}[cmd])
        sent.append({"cmd": cmd, "args": args, "events": events})
        if cmd == "limits":
            ui.say("Limits set: " + ", ".join("%s %s %s" % (label.lower(), ug(args[k]), unit)
                                              for k, label, unit in LIMIT_FIELDS))
        elif cmd == "program":
            ui.say("Program set: %s %d µg/mL" % (new_program["drug"], new_program["conc_ug_per_ml"]))
        else:
            start = find(events, "bolus_start")
            ui.say("Clinician bolus started: %s µg over %d min%s" % (
                ug(args["dose_ng"]), args["duration_min"],
                " (%d strokes)" % start["strokes"] if start and "strokes" in start else ""))
    ui.emit({"ok": True, "cmd": "program", "changed": True, "sent": sent})
    return EXIT_OK


# ---- bolus --------------------------------------------------------------------------------

def cmd_bolus(opts: argparse.Namespace, link: Link, ui: Ui) -> int:
    if opts.patient:
        cmd, args, role = "patient_bolus", {}, PATIENT
        ui.confirm("Ask the pump for the patient bolus the program allows?")
    else:
        dose_ng = parse_amount(opts.dose_ug, 3, "µg", "--dose-ug", allow_zero=False)
        minutes = opts.minutes
        cmd, args, role = "bolus", {"dose_ng": dose_ng, "duration_min": minutes}, CLINICIAN
        ui.confirm("Give a clinician bolus of %s µg over %d min?" % (ug(dose_ng), minutes))
    reply = link.command(cmd, args, role, opts.timeout)
    events = command_events(link, reply, "bolus_start")
    start = find(events, "bolus_start") or {}
    requested = start.get("requested_ng", args.get("dose_ng"))
    what = "Patient bolus" if opts.patient else "Clinician bolus"
    ui.say("%s started: %s µg over %s min, %s strokes" % (
        what, ug(requested) if requested is not None else "?", start.get("duration_min", args.get("duration_min")),
        start.get("strokes", "?")))
    end = follow_bolus(link, ui, opts.timeout) if opts.wait else None
    if end is not None:
        ui.say("Bolus ended (%s): %s µg delivered, %s of %s strokes confirmed" % (
            end.get("end"), ug(end.get("delivered_ng") or 0), end.get("strokes_confirmed"), end.get("strokes_total")))
    ui.emit({"ok": True, "cmd": cmd, "result": reply.result, "bolus_start": start, "bolus_end": end})
    return EXIT_OK


def follow_bolus(link: Link, ui: Ui, timeout_s: float, poll_s: float = 1.0,
                 what: str = "bolus") -> dict[str, Any] | None:
    # Progress from the pump's status until its bolus_end event; Ctrl-C stops waiting
    # (the bolus goes on). Returns the bolus_end event, or None. `what` names it to the
    # user ("bolus", "priming").
    ui.note("Waiting for the %s to end; Ctrl-C stops waiting (the %s goes on)." % (what, what))
    tty = ui.stderr.isatty()
    shown = ""
    end: list[dict[str, Any]] = []

    def seen(body: dict[str, Any]) -> None:
        if body.get("t") == "event" and body.get("ev") == "bolus_end":
            end.append(body)

    try:
        while not end:
            reply = link.request({"cmd": "status"}, timeout_s)
            for f in reply.frames:
                seen(f.body)
            status = reply.last("status")
            if not end and status is not None:
                bolus = status.get("bolus")
                text = "%s: %s" % (what, bolus_text(bolus) if bolus else "ending")
                if text != shown:
                    shown = text
                    ui.stderr.write(("\r%s   " if tty else "%s\n") % text)
                    ui.stderr.flush()
                if bolus is None:
                    # over already, and its end event went by before we looked
                    link.wait_for(lambda b: b.get("ev") == "bolus_end", poll_s, seen)
                    break
            if not end:
                link.wait_for(lambda b: b.get("ev") == "bolus_end", poll_s, seen)
    except KeyboardInterrupt:
        if tty:
            ui.stderr.write("\n")
        ui.note("Stopped waiting; the %s goes on." % what)
        return None
    if tty and shown:
        ui.stderr.write("\n")
    return end[0] if end else None


# ---- refill -------------------------------------------------------------------------------

def tolerance_nl(expected_nl: int) -> int:
    return max(RESIDUAL_TOLERANCE_NL, expected_nl // 10)


def ask_value(ui: Ui, flag: Any, prompt: str, option: str, parse: Callable[[str], int]) -> int:
    # The option's value if it was given (an error if it does not parse), else asked
    # until an answer parses; standard input closed: an error naming the option.
    if flag is not None:
        return parse(flag)
    while True:
        text = ui.ask(prompt, option)
        try:
            return parse(text)
        except UserError as e:
            ui.note(str(e))


def ask_fill(ui: Ui, opts: argparse.Namespace, volume_prompt: str, conc_prompt: str) -> tuple[int, int, int]:
    # (volume_nl, conc, conc_again) for a fill or a refill: the options, else asked; the
    # concentration twice, the second time read from the label
    volume = ask_value(ui, opts.volume_ml, volume_prompt, "--volume-ml",
                       lambda t: parse_amount(t, 6, "mL", "fill volume", allow_zero=False))
    conc = ask_value(ui, opts.conc, conc_prompt, "--conc", lambda t: parse_whole(t, "concentration", 1, 1000000))
    conc_again = ask_value(ui, opts.conc_again, "Concentration again, read from the label (µg/mL): ",
                           "--conc-again", lambda t: parse_whole(t, "concentration", 1, 1000000))
    return volume, conc, conc_again


def cmd_refill(opts: argparse.Namespace, link: Link, ui: Ui) -> int:
    status = link.status(opts.timeout)
    expected = status.get("reservoir_nl", 0)
    old_conc = status.get("conc_ug_per_ml") or 0
    tol = tolerance_nl(expected)
    ui.say("Refill of pump %s (%s%s)" % (link.dev, status.get("drug") or "no drug",
                                         ", %d µg/mL" % old_conc if old_conc else ""))
    ui.say("The pump expects %s left in the reservoir. Withdraw the residual completely and measure it;"
           % ml(expected))
    ui.say("a difference of more than %s from that is flagged (refill_residual)." % ml(tol))
    withdrawn = ask_value(ui, opts.withdrawn_ml, "Volume withdrawn (mL): ", "--withdrawn-ml",
                          lambda t: parse_amount(t, 6, "mL", "withdrawn volume"))
    # The pump compares with its count when it applies the refill, and it has pumped on
    # while the residual was withdrawn: compare with its count now.
    fresh = link.status(opts.timeout).get("reservoir_nl", expected)
    if fresh != expected:
        ui.say("The pump has delivered %s since: it now expects %s." % (ml(expected - fresh), ml(fresh)))
        expected = fresh
        tol = tolerance_nl(expected)
    diff = withdrawn - expected
    if abs(diff) > tol:
        ui.say("Withdrawn %s, expected %s: a difference of %s, beyond the tolerance of %s." % (
            ml(withdrawn), ml(expected), signed_ml(diff), ml(tol)))
        ui.say("  The pump will raise refill_residual: %s." % (
            "more left than it counted (did it deliver less? a blocked catheter?)" if diff > 0 else
            "less left than it counted (a leak? drug in the pocket at the last fill?)"))
    else:
        ui.say("Withdrawn %s, expected %s: difference %s, within %s." % (
            ml(withdrawn), ml(expected), signed_ml(diff), ml(tol)))
    volume, conc, conc_again = ask_fill(ui, opts, "New fill volume (mL): ", "Concentration of the new drug (µg/mL): ")
    if conc != conc_again:
        ui.note("The two concentrations differ (%d and %d µg/mL): the pump will refuse the refill." % (
            conc, conc_again))
    bridge = opts.bridge
    if old_conc and conc != old_conc and bridge is None:
        ui.say("The concentration changes from %d to %d µg/mL: the old drug still in the line must be "
               "given at its own strength (a bridge)." % (old_conc, conc))
        if ui.yes:
            raise UserError("a change of concentration needs --bridge (or --no-bridge to let the pump refuse it)")
        ui.confirm("Refill with a bridge?")
        bridge = True
    args: dict[str, Any] = {"withdrawn_nl": withdrawn, "volume_nl": volume, "conc_ug_per_ml": conc,
                            "conc_again": conc_again}
    if bridge is not None:
        args["bridge"] = bool(bridge)
    ui.confirm("Refill: %s withdrawn, new fill %s at %d µg/mL%s. Send?" % (
        ml(withdrawn), ml(volume), conc, " with a bridge" if bridge else ""))
    expected = link.status(opts.timeout).get("reservoir_nl", expected)  # at the moment of sending
    diff = withdrawn - expected
    reply = link.command("refill", args, CLINICIAN, opts.timeout)
    events = command_events(link, reply, "refill")
    refill = find(events, "refill") or {}
    fill = find(events, "fill") or {}
    mismatch = bool(refill.get("mismatch"))
    ui.say("Refilled: %s at %d µg/mL%s." % (ml(volume), conc,
                                              ", bridge of %s" % ml(fill["bridge_nl"]) if fill.get("bridge_nl") else ""))
    if refill:
        ui.say("Residual: withdrawn %s, expected %s, difference %s, tolerance %s." % (
            ml(refill.get("withdrawn_nl", withdrawn)), ml(refill.get("expected_nl", expected)),
            signed_ml(refill.get("difference_nl", diff)), ml(refill.get("tolerance_nl", tol))))
    if mismatch:
        ui.say("MISMATCH: the pump raised the refill_residual alarm. Look for the cause (catheter, "
               "pocket, leak), then acknowledge it: python -m tools.console ack")
    ui.emit({"ok": True, "cmd": "refill", "args": args, "refill": refill, "fill": fill, "mismatch": mismatch})
    return EXIT_OK


# ---- first fill, priming, titration ---------------------------------------------------------

# A titration's bounds, as the pump checks them (firmware/pump/therapy.py, titrate): the
# console checks them too, so that a typo fails before anything is sent or started.
TITRATE_PERCENT_MIN, TITRATE_PERCENT_MAX = -90, 100
TITRATE_DAILY_NG_MIN, TITRATE_DAILY_NG_MAX = 1000, 3000000
TITRATE_IN_MIN_MAX = 8640  # 6 days (therapy.TITRATION_DELAY_MS_MAX)
# What `prime` may prime: the whole line, or the catheter alone (after a revision).
PRIME_PARTS = ("all", "catheter")
PRIME_WHAT = {"all": "the pump's tubing and the catheter", "catheter": "the catheter"}


def cmd_fill(opts: argparse.Namespace, link: Link, ui: Ui) -> int:
    # The first fill of an empty pump. A pump that holds drug is refilled instead, through
    # the refill workflow (the residual withdrawn against the pump's account).
    status = link.status(opts.timeout)
    held = status.get("conc_ug_per_ml") or 0
    if held:
        raise UserError("pump %s has been filled already: %s of %d µg/mL left in its reservoir. `fill` is the "
                        "first fill of an empty pump; to replace its drug, withdraw the residual and use "
                        "`python -m tools.console refill` (it checks what you withdraw against the pump's "
                        "account). Nothing was sent" % (link.dev, ml(status.get("reservoir_nl") or 0), held))
    program = link.settings(opts.timeout).get("program")
    ui.say("First fill of pump %s: its reservoir is empty (%s)." % (
        link.dev, "program: %s, %d µg/mL" % (program.get("drug"), program.get("conc_ug_per_ml"))
        if program else "no program yet"))
    volume, conc, conc_again = ask_fill(ui, opts, "Fill volume (mL): ", "Concentration of the drug (µg/mL): ")
    if conc != conc_again:
        raise UserError("the concentration was entered as %d and as %d µg/mL: they must agree; read the label "
                        "again. Nothing was sent" % (conc, conc_again))
    if program and program.get("conc_ug_per_ml") != conc:
        raise UserError("the pump's program is for %s µg/mL and the drug is %d µg/mL: fill with the program's "
                        "concentration, or program the pump for this one first (console program FILE). Nothing "
                        "was sent" % (program.get("conc_ug_per_ml"), conc))
    args = {"volume_nl": volume, "conc_ug_per_ml": conc}
    # nL x ug/mL = 1e-6 ug: the drug in the reservoir, exactly, in ng
    ui.confirm("First fill: %s of %d µg/mL (%s µg of drug). Send?" % (ml(volume), conc,
                                                                     ug(Fraction(volume * conc, 1000))))
    reply = link.command("fill", args, CLINICIAN, opts.timeout)
    fill = find(command_events(link, reply, "fill"), "fill") or {}
    ui.say("Filled: %s at %d µg/mL." % (ml(volume), conc))
    if program is None:
        ui.say("Next: program the pump (python -m tools.console program FILE); then, if its line is empty, "
               "prime it (python -m tools.console prime).")
    elif line_volume_nl(program, "all"):
        ui.say("The pump takes its line (%s µL) as full of this drug. If it is empty (a new pump or catheter), "
               "prime it: python -m tools.console prime" % ul(line_volume_nl(program, "all")))
    ui.emit({"ok": True, "cmd": "fill", "args": args, "fill": fill})
    return EXIT_OK


def line_volume_nl(program: dict[str, Any], part: str) -> int:
    # what priming `part` fills, from the program's dead volumes (the pump's prime())
    catheter = int(program.get("catheter_dead_volume_nl") or 0)
    return catheter + int(program.get("pump_dead_volume_nl") or 0) if part == "all" else catheter


def priming_ms(volume_nl: int, nl_per_hour: int) -> int:
    # about how long priming takes at the program's rate (the pump rounds up to whole strokes)
    return -(-volume_nl * 3600000 // nl_per_hour) if nl_per_hour > 0 else 0


def prime_lines(program: dict[str, Any], part: str) -> list[str]:
    # What `prime` will prime, from the pump's settings, in uL
    rows = []
    if part == "all":
        rows.append(("Pump dead volume", "%s µL" % ul(int(program.get("pump_dead_volume_nl") or 0))))
    rows.append(("Catheter dead volume", "%s µL" % ul(int(program.get("catheter_dead_volume_nl") or 0))))
    volume = line_volume_nl(program, part)
    rate = int(program.get("priming_nl_per_hour") or 0)
    rows.append(("To prime", "%s µL at %s µL/h: about %s" % (ul(volume), ul(rate),
                                                              wait_text(priming_ms(volume, rate)))))
    return ["  %-22s %s" % row for row in rows]


def cmd_prime(opts: argparse.Namespace, link: Link, ui: Ui) -> int:
    part = opts.part
    program = link.settings(opts.timeout).get("program")
    status = link.status(opts.timeout)
    if program is None:
        raise UserError("pump %s has no program, which says how much line there is to prime: program it "
                        "(console program FILE), fill it (console fill), then prime. Nothing was sent" % link.dev)
    conc = status.get("conc_ug_per_ml") or 0
    if not conc:
        raise UserError("pump %s holds no drug to prime with: fill it first (python -m tools.console fill). "
                        "Nothing was sent" % link.dev)
    ui.say("Priming of pump %s (%s, %d µg/mL): %s" % (link.dev, program.get("drug"), conc, PRIME_WHAT[part]))
    for line in prime_lines(program, part):
        ui.say(line)
    volume = line_volume_nl(program, part)
    if not volume:
        raise UserError("nothing to prime: the program's %s is 0 µL (a program file sets it in [line]). Nothing "
                        "was sent" % ("dead volume" if part == "all" else "catheter dead volume"))
    bolus = status.get("bolus")
    if bolus:
        raise UserError("a bolus is running (%s): priming waits for its end%s. Nothing was sent" % (
            bolus_text(bolus), "" if bolus.get("kind") == "bridge" else
            " (or end it: python -m tools.console cancel-bolus)"))
    ui.say("The basal stops while priming: what leaves the catheter tip until the drug arrives is not drug, and "
           "the pump does not count it as delivered.")
    ui.confirm("Prime %s (%s µL)?" % (PRIME_WHAT[part], ul(volume)))
    reply = link.command("prime", {"part": part}, CLINICIAN, opts.timeout)
    start = find(command_events(link, reply, "bolus_start"), "bolus_start") or {}
    duration = start.get("duration_ms")
    ui.say("Priming started: %s µL, %s strokes over %s" % (
        ul(start.get("volume_nl", volume)), start.get("strokes", "?"),
        wait_text(duration) if isinstance(duration, int) else "?"))
    end = follow_bolus(link, ui, opts.timeout, what="priming") if opts.wait else None
    if end is not None:
        ui.say("Priming ended (%s): %s of %s strokes confirmed" % (
            end.get("end"), end.get("strokes_confirmed"), end.get("strokes_total")))
    ui.emit({"ok": True, "cmd": "prime", "part": part, "volume_nl": volume, "result": reply.result,
             "bolus_start": start, "bolus_end": end})
    return EXIT_OK


def parse_percent(text: Any) -> int:
    # "-20", "+15", "15%" -> the whole percent a titration changes every step by
    t = str(text).strip()
    if t.endswith("%"):
        t = t[:-1].strip()
    try:
        n = int(t)
    except ValueError:
        raise UserError("--percent %r: expected a whole number of percent, e.g. -20 or 15" % text) from None
    if n == 0:
        raise UserError("--percent 0 changes nothing")
    if not TITRATE_PERCENT_MIN <= n <= TITRATE_PERCENT_MAX:
        raise UserError("--percent %d: the pump titrates by %d..+%d %%" % (n, TITRATE_PERCENT_MIN,
                                                                          TITRATE_PERCENT_MAX))
    return n


def titration_args(opts: argparse.Namespace) -> dict[str, int]:
    # --percent or --dose-ug-per-day, and --in-min, as the pump's titrate arguments
    if (opts.percent is None) == (opts.dose_ug_per_day is None):
        raise UserError("titrate: give --percent N or --dose-ug-per-day N (one of them)")
    args: dict[str, int] = {}
    if opts.percent is not None:
        args["percent"] = parse_percent(opts.percent)
    else:
        daily = parse_amount(opts.dose_ug_per_day, 3, "µg/day", "--dose-ug-per-day", allow_zero=False)
        if not TITRATE_DAILY_NG_MIN <= daily <= TITRATE_DAILY_NG_MAX:
            raise UserError("--dose-ug-per-day %s: the pump titrates to %s..%s µg/day" % (
                opts.dose_ug_per_day, ug(TITRATE_DAILY_NG_MIN), ug(TITRATE_DAILY_NG_MAX)))
        args["daily_ng"] = daily
    args["in_min"] = parse_whole(opts.in_min if opts.in_min is not None else 0, "--in-min", 0, TITRATE_IN_MIN_MAX)
    return args


def parse_at(text: str) -> tuple[int | None, int]:
    # --at: "YYYY-MM-DDTHH:MM" -> (day, ms after midnight), or "HH:MM" -> (None, ms):
    # the next such time on the pump's clock
    import re as _re
    m = _re.fullmatch(r"(\d{1,2}):(\d{2})", text.strip())
    if m:
        h, mi = int(m.group(1)), int(m.group(2))
        if h > 23 or mi > 59:
            raise UserError("--at %s: hours 0..23 and minutes 0..59" % text)
        return None, (h * 60 + mi) * 60000
    try:
        day, ms = parse_when(text)
    except UserError:
        raise UserError("--at %r: expected YYYY-MM-DDTHH:MM or HH:MM (the pump's wall clock)" % text) from None
    return day, ms


def minutes_until(at: tuple[int | None, int], clock: Any) -> int:
    # The whole minutes from the pump's clock to `at` (rounded up, so it never takes
    # effect early); UserError when the clock is not set, or `at` is past or too far.
    from tools import clinical
    now = clinical.wall_of_clock(clock)
    if now is None:
        raise UserError("--at needs the pump's wall clock, which is not set: set it (console clock set now), "
                        "or give --in-min")
    day, ms = at
    if day is None:
        target = now - now % DAY_MS + ms
        if target <= now:
            target += DAY_MS
    else:
        target = day * DAY_MS + ms
    if target <= now:
        raise UserError("--at %s is past on the pump's clock (%s)" % (clinical.wall_text(target),
                                                                    clinical.wall_text(now)))
    minutes = -(-(target - now) // 60000)
    if minutes > TITRATE_IN_MIN_MAX:
        raise UserError("--at %s is more than %d days ahead of the pump's clock (%s)" % (
            clinical.wall_text(target), TITRATE_IN_MIN_MAX // 1440, clinical.wall_text(now)))
    return minutes


def parse_size(text: str) -> tuple[int, int]:
    try:
        w, h = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise UserError("--size %r: give WIDTHxHEIGHT in pixels, e.g. 1200x1500" % text) from None
    if not (200 <= w <= 10000 and 200 <= h <= 10000):
        raise UserError("--size %s: 200..10000 pixels each way" % text)
    return w, h


def titrated_profiles(program: dict[str, Any], args: dict[str, int]) -> dict[str, list[list[int]]]:
    # The program's profiles (wire form) after the titration, computed with the pump's own
    # code (pump.schedule), so what is shown is what the pump will run, to the ng/day.
    from pump.schedule import Schedule
    profiles = program.get("profiles") or {}
    names = sorted(profiles)
    week = [names.index(n) for n in (program.get("week") or [names[0]] * 7)]
    sched = Schedule([[[start * 60000, rate] for start, rate in profiles[n]] for n in names], week)
    if "percent" in args:
        new = sched.scaled(100 + args["percent"], 100)
    else:
        new = Schedule([sched.scaled_to_daily(i, args["daily_ng"]) for i in range(len(names))], list(week))
    wire_form: dict[str, list[list[int]]] = new.to_wire(names)
    return wire_form


def profile_daily_ng(steps: list[Any]) -> Fraction:
    # The drug one day of a profile programs when the day before followed it too (its
    # last step runs until its first): ng, exactly.
    total = 0  # ng/day x minutes
    prev_start, prev_rate = 0, steps[-1][1]
    for start, rate in steps:
        total += prev_rate * (start - prev_start)
        prev_start, prev_rate = start, rate
    total += prev_rate * (1440 - prev_start)
    return Fraction(total, 1440)


def titration_lines(old: dict[str, list[Any]], new: dict[str, list[Any]]) -> list[str]:
    # The daily dose now and after the titration, per day profile, in ug
    if len(old) == 1:
        (name, steps), = old.items()
        if len(steps) == 1:
            return ["  %-15s %s µg/day  ->  %s µg/day" % ("Daily dose", ug(steps[0][1]), ug(new[name][0][1]))]
    lines = []
    for name in sorted(old):
        lines.append("  %s: %s µg a day  ->  %s µg a day" % (name, ug(profile_daily_ng(old[name])),
                                                             ug(profile_daily_ng(new[name]))))
        lines.append("    now  " + profile_text(old[name]))
        lines.append("    new  " + profile_text(new[name]))
    return lines


def cmd_titrate(opts: argparse.Namespace, link: Link, ui: Ui) -> int:
    args = titration_args(opts)
    settings = link.settings(opts.timeout)
    program = settings.get("program")
    if program is None:
        raise UserError("pump %s has no program to titrate: program it first (console program FILE)" % link.dev)
    status = link.status(opts.timeout)
    if getattr(opts, "at", None) is not None:
        # a set time on the pump's wall clock, as minutes from now (rounded up): the pump
        # takes titrations relative to when it accepts them
        args["in_min"] = minutes_until(parse_at(opts.at), status.get("clock") or settings.get("clock"))
    old = program.get("profiles") or {}
    new = titrated_profiles(program, args)
    how = ("%+d %% on every step" % args["percent"] if "percent" in args else
           "to %s µg a day, each day profile keeping its shape" % ug(args["daily_ng"]))
    when = "now" if not args["in_min"] else "in %s" % wait_text(args["in_min"] * 60000)
    from tools import clinical
    wall = clinical.wall_of_clock(status.get("clock"))
    if args["in_min"] and wall is not None:
        when += " (at %s on the pump's clock)" % clinical.wall_text(wall + args["in_min"] * 60000)
    ui.say("Titration of pump %s (%s, %s µg/mL): %s, %s" % (link.dev, program.get("drug"),
                                                           program.get("conc_ug_per_ml"), how, when))
    for line in titration_lines(old, new):
        ui.say(line)
    pending = status.get("titration_in_ms")
    if isinstance(pending, int):
        ui.say("It replaces the titration due in %s (this one starts from the program running now)."
               % wait_text(pending))
    if status.get("paused"):
        ui.say("The pump is paused: the new doses run once it is resumed.")
    ui.confirm("Titrate?")
    confirm_dose_change(ui, opts, program, dict(program, profiles=new))
    reply = link.command("titrate", args, CLINICIAN, opts.timeout)
    titration = find(command_events(link, reply, "titration"), "titration") or {}
    if args["in_min"]:
        ui.say("Titration programmed: it takes effect in %s." % wait_text(args["in_min"] * 60000))
    else:
        after = link.status(opts.timeout)
        ui.say("Titrated: the new doses run now%s." % (
            "" if after.get("paused") or not isinstance(after.get("rate_ng_per_day"), int) else
            " (%s µg/day at this hour)" % ug(after["rate_ng_per_day"])))
    ui.emit({"ok": True, "cmd": "titrate", "args": args, "profiles_now": old, "profiles_new": new,
             "daily_ug_now": {n: ug(profile_daily_ng(s)) for n, s in old.items()},
             "daily_ug_new": {n: ug(profile_daily_ng(s)) for n, s in new.items()},
             "titration": titration, "result": reply.result})
    return EXIT_OK


# ---- alarms, clock, alarm levels ------------------------------------------------------------

def cmd_ack(opts: argparse.Namespace, link: Link, ui: Ui) -> int:
    role = pick_role(opts, link, (CLINICIAN, PATIENT))
    reply = link.command("ack", {}, role, opts.timeout)
    events = command_events(link, reply, "ack")
    ack = find(events, "ack") or {}
    cleared = ack.get("cleared") or []
    status = link.status(opts.timeout)
    active = status.get("alarms") or []
    ui.say("Acknowledged%s. Cleared: %s" % (" (as %s)" % role, ", ".join(cleared) or "none"))
    ui.say("Still active: %s" % (", ".join(alarm_text(a) for a in active) or "none"))
    ui.emit({"ok": True, "cmd": "ack", "role": role, "cleared": cleared, "alarms": active})
    return EXIT_OK


def cmd_silence(opts: argparse.Namespace, link: Link, ui: Ui) -> int:
    role = pick_role(opts, link, (CLINICIAN, PATIENT))
    reply = link.command("silence", {"minutes": opts.minutes}, role, opts.timeout)
    ui.say("Alarm sound silenced for %d min (the light stays); anything new sounds at once." % opts.minutes)
    ui.emit({"ok": True, "cmd": "silence", "role": role, "minutes": opts.minutes, "result": reply.result})
    return EXIT_OK


def cmd_clock(opts: argparse.Namespace, link: Link, ui: Ui) -> int:
    if opts.action == "show":
        settings = link.settings(opts.timeout)
        ui.say("Pump clock: %s" % clock_text(settings.get("clock")))
        ui.emit({"ok": True, "cmd": "clock", "clock": settings.get("clock")})
        return EXIT_OK
    day, ms = parse_when(opts.when)
    reply = link.command("clock", {"day": day, "ms": ms}, CLINICIAN, opts.timeout)
    events = command_events(link, reply, "clock")
    ev = find(events, "clock") or {}
    ui.say("Pump clock set to %s." % clock_text([day, ms]))
    if ev.get("was_valid"):
        moved = ev.get("moved_ms")
        if moved is None:  # the pump says how far only within 5 days (docs/protocol.md)
            ui.say("It moved by more than 5 days.")
        else:
            ui.say("It moved %s %s." % (wait_text(abs(moved)), "forward" if moved >= 0 else "back"))
    if ev.get("skipped_ng"):
        ui.say("The schedule's doses over the hours skipped (%s µg) are not given: elapsed time drives "
               "delivery." % ug(ev["skipped_ng"]))
    if ev.get("repeated_ng"):
        ui.say("The schedule's doses over the hours repeated (%s µg) are not given twice." % ug(ev["repeated_ng"]))
    ui.emit({"ok": True, "cmd": "clock", "clock": [day, ms], "event": ev})
    return EXIT_OK


ALARM_LEVELS = (("low_reservoir_nl", "low_ml", "Low reservoir", "mL"),
                ("low_days", "low_days", "Low days left", "days"),
                ("empty_floor_nl", "empty_floor_ml", "Empty floor", "mL"))


def cmd_alarm_settings(opts: argparse.Namespace, link: Link, ui: Ui) -> int:
    settings = link.settings(opts.timeout)
    current = dict(settings.get("alarm_settings") or {})
    given = {key: getattr(opts, attr) for key, attr, _, _ in ALARM_LEVELS if getattr(opts, attr) is not None}

    def show(levels: dict[str, Any]) -> None:
        for key, _, label, unit in ALARM_LEVELS:
            v = levels.get(key)
            ui.say("%-15s %s" % (label, "?" if v is None else (ml(v) if unit == "mL" else "%d days" % v)))

    if not given:
        show(current)
        ui.emit({"ok": True, "cmd": "alarm_settings", "alarm_settings": current})
        return EXIT_OK
    new = dict(current)
    for key, text in given.items():
        if key == "low_days":
            new[key] = parse_whole(text, "--low-days", 0, 1000)
        else:
            new[key] = parse_amount(text, 6, "mL", "--" + key.replace("_nl", "_ml").replace("_", "-"))
    missing = [k for k, _, _, _ in ALARM_LEVELS if k not in new]
    if missing:
        raise UserError("the pump did not say its current %s: give all three levels" % ", ".join(missing))
    args = {k: new[k] for k, _, _, _ in ALARM_LEVELS}
    reply = link.command("alarm_settings", args, CLINICIAN, opts.timeout)
    command_events(link, reply, "alarm_settings")
    ui.say("Alarm levels set:")
    show(args)
    ui.emit({"ok": True, "cmd": "alarm_settings", "alarm_settings": args})
    return EXIT_OK


def cmd_simple(opts: argparse.Namespace, link: Link, ui: Ui) -> int:
    # pause, resume, cancel-bolus: a clinician command without arguments
    cmd = {"pause": "pause", "resume": "resume", "cancel-bolus": "cancel_bolus"}[opts.command]
    reply = link.command(cmd, {}, CLINICIAN, opts.timeout)
    ui.say({"pause": "Paused: the keep-open rate runs until `resume`.", "resume": "Resumed: the program runs.",
            "cancel_bolus": "Bolus cancelled."}[cmd])
    ui.emit({"ok": True, "cmd": cmd, "result": reply.result})
    return EXIT_OK


# ---- log and plot -------------------------------------------------------------------------

def fetch_log(link: Link, ui: Ui) -> Any:
    progress = ui.progress("log")
    export = link.log_export(progress)
    progress.finish()
    if export.missing:
        ui.note("warning: %d of %d records did not arrive intact (link errors); export again for a "
                "complete log" % (export.missing, export.result.get("records", 0)))
    if export.result.get("corrupt"):
        ui.note("warning: the pump skipped %s stored records that failed their check" % export.result["corrupt"])
    return export


def cmd_log(opts: argparse.Namespace, link: Link, ui: Ui) -> int:
    export = fetch_log(link, ui)
    # the status now places the pump's current boot on its wall clock
    text = logformat.render(export.records, opts.format, link.status(opts.timeout))
    if opts.output and opts.output != "-":
        from tools.keystore import write_private
        # health data: readable by its owner only, written whole or not at all
        write_private(opts.output, text.encode())
        ui.note("log: %d records written to %s (%s)" % (len(export.records), opts.output, opts.format))
    else:
        ui.stdout.write(text)
        ui.stdout.flush()
        ui.note("log: %d records" % len(export.records))
    return EXIT_OK


def cmd_plot(opts: argparse.Namespace, link: Link, ui: Ui) -> int:
    from tools import plot
    export = fetch_log(link, ui)
    status = link.status(opts.timeout)
    w, h = parse_size(opts.size) if opts.size else (plot.WIDTH_PX, plot.HEIGHT_PX)
    try:
        # the status frame now: the end of the record, and where the wall clock stands
        plot.render_png(export.records, opts.output, [status], w, h, opts.title)
    except ImportError as e:
        raise UserError("plots need matplotlib, which is not installed (%s)" % e) from None
    except (ValueError, OSError) as e:  # tools.plot.PlotError is a ValueError
        raise UserError("no plot: %s" % e) from None
    ui.say("Plot of %d log records written to %s" % (len(export.records), opts.output))
    ui.emit({"ok": True, "cmd": "plot", "output": opts.output, "records": len(export.records)})
    return EXIT_OK


def cmd_report(opts: argparse.Namespace, link: Link, ui: Ui) -> int:
    from tools import report
    return report.cmd_report(opts, link, ui)


# ---- keys ---------------------------------------------------------------------------------

def parse_roles(text: str) -> list[str]:
    roles = [r.strip() for r in text.split(",") if r.strip()]
    bad = [r for r in roles if r not in ROLES]
    if bad or not roles:
        raise UserError("--roles %r: a comma-separated list of %s" % (text, ", ".join(ROLES)))
    return [r for r in ROLES if r in roles]


def pico_storage_dir() -> str:
    # The folder the Pico keeps its data in (boards/pico/config.py STORAGE_DIR), as a
    # device path relative to the REPL's working directory ("/" on a Pico).
    import ast
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "boards", "pico", "config.py")
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "STORAGE_DIR" for t in node.targets):
            value = ast.literal_eval(node.value)
            return str(value).strip("/")
    raise UserError("boards/pico/config.py has no STORAGE_DIR")


def mpremote_exe(opts: argparse.Namespace) -> str:
    return opts.mpremote or os.path.join(os.path.dirname(sys.executable), "mpremote")


def _connect_args(opts: argparse.Namespace) -> list[str]:
    args = [mpremote_exe(opts), "connect", opts.port]
    if opts.resume:
        args.append("resume")
    return args


def _run_mpremote(args: list[str], what: str) -> str:
    try:
        proc = subprocess.run(args, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise UserError("mpremote not found (%s): install it (make sim sets up the venv) or give --mpremote"
                        % args[0]) from None
    except subprocess.TimeoutExpired:
        raise UserError("mpremote did not finish %s within 120 s" % what) from None
    if proc.returncode:
        raise UserError("mpremote failed to %s (exit %d): %s\nIs the Pico connected, and was it booted with the "
                        "service pin held (docs/pico.md)?" % (what, proc.returncode,
                                                             (proc.stderr or proc.stdout).strip()[-500:]))
    return proc.stdout


def pico_dev(opts: argparse.Namespace) -> str:
    # The Pico's device id as its firmware computes it: machine.unique_id() in hex.
    script = ("import machine, binascii\n"
              "print('PUMP-DEV ' + binascii.hexlify(machine.unique_id()).decode())\n")
    out = _run_mpremote(_connect_args(opts) + ["exec", script], "read the Pico's unique id")
    m = re.search(r"PUMP-DEV ([0-9a-f]+)", out)
    if not m:
        raise UserError("could not read the Pico's unique id (mpremote said %r); give it with --dev" % out[-200:])
    return m.group(1)


def provision_pico(opts: argparse.Namespace, store: KeyStore, ui: Ui) -> int:
    roles = parse_roles(opts.roles)
    dev = opts.dev or pico_dev(opts)
    ui.say("Provisioning pump %s on %s with new %s key%s." % (dev, opts.port, " and ".join(roles),
                                                            "s" if len(roles) > 1 else ""))
    ui.say("This replaces every key the pump holds: consoles with its old keys can no longer command it.")
    ui.confirm("Provision?")
    keys = fresh_keys(roles)
    data_dir = pico_storage_dir()
    target = "%s/keys" % data_dir if data_dir else "keys"
    mkdir = "import os\ntry:\n    os.mkdir(%r)\nexcept OSError:\n    pass\n" % data_dir if data_dir else "pass\n"
    fd, tmp = tempfile.mkstemp(prefix="pump-keys-")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(keys_file(dev, keys))
        args = _connect_args(opts) + ["exec", mkdir, "+", "fs", "cp", tmp, ":" + target]
        if not opts.no_reset:
            args += ["+", "reset"]
        _run_mpremote(args, "copy the keys file to the Pico")
    finally:
        os.unlink(tmp)
    entry = store.install(dev, keys)
    ui.say("Keys written to the Pico (:%s) and to %s." % (target, store.path(dev)))
    ui.say("The Pico restarts and reads them at boot; `python -m tools.console info --port %s` shows them."
           % opts.port if not opts.no_reset else "Reset the Pico so that it reads them at boot.")
    ui.emit({"ok": True, "cmd": "provision", "dev": dev, "roles": entry.roles, "key_store": store.path(dev)})
    return EXIT_OK


def provisioned_sim(opts: argparse.Namespace, link: Link, store: KeyStore, ui: Ui) -> int:
    # `provision --sim`: the keys went into the flash before boot (console.Source); check
    # that the pump took them.
    hello = link.hello(opts.timeout)
    dev = link.dev
    roles = hello.get("roles") or []
    entry = store.load(dev) if dev else None
    want = entry.roles if entry else []
    if sorted(roles) != sorted(want):
        raise UserError("the simulated pump holds keys for %s, the key store for %s: the pump did not read "
                        "its keys file (see its log: keys_invalid)" % (roles or "no role", want or "no role"))
    ui.say("Simulated pump %s provisioned with %s keys; key store %s" % (dev, " and ".join(want), store.path(dev or "")))
    ui.emit({"ok": True, "cmd": "provision", "dev": dev, "roles": want, "key_store": store.path(dev or "")})
    return EXIT_OK


def cmd_keys(opts: argparse.Namespace, store: KeyStore, ui: Ui) -> int:
    if opts.action == "list":
        found = []
        for dev in store.devices():
            try:
                entry = store.load(dev)
            except KeyStoreError as e:
                ui.say("%-24s %s" % (dev, e))
                continue
            if entry is None:
                continue
            found.append({"dev": dev, "roles": entry.roles, "ctr": entry.ctr})
            ui.say("%-24s %s  (last counters: %s)" % (dev, ", ".join(entry.roles) or "no keys",
                                                     ", ".join("%s %d" % kv for kv in sorted(entry.ctr.items()))))
        if not found:
            ui.say("No pumps in the key store %s" % store.directory)
        ui.emit({"ok": True, "key_store": store.directory, "pumps": found})
        return EXIT_OK
    if not opts.dev or not opts.to:
        raise UserError("keys export needs --dev ID and --to DIR")
    roles = parse_roles(opts.roles)
    path = store.export(opts.dev, roles, opts.to)
    ui.say("Wrote %s with the %s key%s of pump %s: give it to that console (its --keys or $PUMP_KEYS_DIR)."
           % (path, " and ".join(roles), "s" if len(roles) > 1 else "", opts.dev))
    ui.emit({"ok": True, "path": path, "roles": roles})
    return EXIT_OK


# ---- errors as the user sees them -----------------------------------------------------------

def report_error(e: BaseException, ui: Ui, cmd: str) -> int:
    # One message on stderr (and a JSON object with --json); the exit status.
    if isinstance(e, Cancelled):
        ui.note("Cancelled: nothing was sent.")
        ui.emit({"ok": False, "cmd": cmd, "error": "cancelled"})
        return EXIT_CANCELLED
    if isinstance(e, CommandError):
        # the pump's refusal is 3; a command this console could not send (no key in the
        # store, a pump that takes no commands) is 2, like every other host-side problem
        status, code, reason = (EXIT_REFUSED if e.result else EXIT_USAGE), e.code, e.reason
    elif isinstance(e, UserError):
        status, code, reason = e.status, None, None
    elif isinstance(e, (KeyStoreError, RequestTimeout)):
        status, code, reason = EXIT_USAGE, None, None
    else:
        raise e
    # the pump's reasons name nL, ng and ms: a person reads mL, µg and h:mm (the JSON
    # keeps the pump's words)
    from tools.clinical import reason_text
    ui.note("console: %s" % (reason_text(str(e)) if isinstance(e, CommandError) else e))
    out: dict[str, Any] = {"ok": False, "cmd": cmd, "error": str(e)}
    if code:
        out["code"] = code
    if reason:
        out["reason"] = reason
    if isinstance(e, CommandError) and e.result:
        out["result"] = e.result
    ui.emit(out)
    return status
