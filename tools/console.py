"""The pump's serial console: watch a pump (or the simulated Pico) live, ask its status,
program it, fill, prime and titrate it, give boluses, refill it, handle its alarms, export its
log, provision its keys.

    python -m tools.console watch --sim                 # live dashboard, Ctrl-C quits
    python -m tools.console watch --sim --days 30 --speed 0 | tail   # scripted
    python -m tools.console status --port /dev/ttyACM0 --json
    python -m tools.console program programs/continuous-500.toml --port /dev/ttyACM0
    python -m tools.console bolus --dose-ug 50 --minutes 30 --port /dev/ttyACM0
    python -m tools.console titrate --percent -20 --in-min 60 --port /dev/ttyACM0
    python -m tools.console log export --format csv -o pump-log.csv --port /dev/ttyACM0

Commands that change therapy are signed with the pump's keys from the host key store
(tools/keystore.py, docs/security.md); tools/commands.py holds them.
docs/console.md is the user's guide.
"""
from __future__ import annotations

import argparse
import json
import os
import select
import sys
import time
from typing import Any, Callable

from tools import commands, dashboard, session
from tools.commands import Cancelled, Ui, UserError
from tools.dashboard import Dashboard, LinkHealth
from tools.keystore import ENV_DIR, ROLES, KeyStore, KeyStoreError
from tools.link import CommandError, Link, LinkClosed, RequestTimeout
from tools.port import PortError, open_serial
from tools.emupico import EmuPico, check_emu_options, emu_from_options, setup_therapy
from tools.simpico import (DEFAULT_PROGRAM, SIM_ONLY_OPTIONS, SimPico, Stopped, add_sim_options, check_sim_options,
                           raise_on_termination, report_exit, sim_from_options, sim_keys,
                           status_period_ms)

REDRAW_MIN_S = 0.05  # at most 20 redraws a second, however fast frames come
REDRAW_MAX_S = 0.5  # and at least two, so "last frame ... ago" keeps counting
DRAIN_QUIET_S = 0.3  # after the firmware exits: read until the port is this long quiet
KEY_CTRL_C = 3
EMU_TIMEOUT_S = 60.0  # --emu: the least wait for a command's answer
SILENT_PROBE_S = 5.0  # watch: with no frame for this long, ask the pump for its status
EXIT_INTERRUPTED = 130  # Ctrl-C after a command was sent: the pump may have acted on it


class PumpSilent(RequestTimeout):
    """No answer in time; the message says what that may mean (a firmware that does not
    run, or a command that may or may not have been carried out)."""

    def __init__(self, port: str, cmd: Any, timeout_s: float, heard: bool, signed: bool) -> None:
        self.cmd = cmd
        if signed:
            text = ("no answer to `%s` from the pump on %s within %.0f s: it may or may not have carried it out. "
                    "Check with `python -m tools.console status --port %s` before sending it again"
                    % (cmd, port, timeout_s, port))
        elif heard:
            text = ("the pump on %s sends frames but did not answer `%s` within %.0f s: it may be busy; try "
                    "again, or give a longer --timeout" % (port, cmd, timeout_s))
        else:
            text = ("nothing came from %s within %.0f s: is the pump's firmware running? A Pico in service "
                    "mode or at its REPL does not answer (docs/pico.md); the simulated Pico prints its port when "
                    "it runs (python -m tools.simpico)" % (port, timeout_s))
        super().__init__(text)


class ConsoleLink(Link):
    # The console's link: remembers the signed command on its way (what Ctrl-C must
    # tell about), and turns a timeout into a message that says what it may mean.
    sent_cmd: str | None = None
    answered = False

    def command(self, cmd: str, args: dict[str, Any] | None = None, role: str = "clinician",
                timeout_s: float = 3.0) -> Any:
        self.sent_cmd, self.answered = cmd, False
        reply = super().command(cmd, args, role, timeout_s)
        self.answered = True
        return reply

    def _exchange(self, body: dict[str, Any], timeout_s: float, on_frame: Any = None,
                  idle_timeout: bool = False) -> Any:
        try:
            return super()._exchange(body, timeout_s, on_frame, idle_timeout)
        except RequestTimeout:
            raise PumpSilent(self.port, body.get("cmd"), timeout_s, self.frames_in > 0,
                             "auth" in body) from None


class Source:
    # Where frames come from: a port given by path, or a simulated Pico started here.
    # Either way self.link signs commands with self.store, the host key store. With
    # serve (watch, session), the port is shared: this console holds it and serves it to
    # other consoles (tools/session.py); a port some session already serves is used
    # through that session.
    def __init__(self, opts: argparse.Namespace, serve: bool = False) -> None:
        self.sim: SimPico | EmuPico | None = None
        self.server: session.SessionServer | None = None
        self._serial: Any = None
        self._scratch_store: str | None = None
        self.shared = ""  # how the port is shared, for the title
        if getattr(opts, "emu", False):
            self._start_emu(opts, serve)
        elif opts.sim:
            self.status_ms = opts.status_ms or status_period_ms(opts.speed)
            self.sim = sim_from_options(opts, self.status_ms)
            try:
                self.store, self.sim.keys = self._sim_keys(opts, self.sim)
                self.sim.open()
                self.port = self.sim.port
                # Attach before the firmware starts, so its power-up events are seen too.
                self.link = ConsoleLink(self.port, keys=self.store, transport=self._transport(serve))
                self.sim.launch()
            except BaseException:
                self.close()
                raise
            speed = "as fast as possible" if opts.speed == 0 else "%dx" % opts.speed
            days = ", %d days" % opts.days if opts.days else ""
            self.title = "Simulated Pico %s on %s  (%s%s, seed %d, status every %s)" % (
                self.sim.dev, self.sim.port, speed, days, opts.seed, dashboard.duration_ms(self.status_ms))
        else:
            self.port = opts.port
            self.store = KeyStore(getattr(opts, "keys", None))
            try:
                self.link = ConsoleLink(opts.port, keys=self.store, transport=self._transport(serve))
            except BaseException:
                self.close()
                raise
            self.title = "Pump on %s" % opts.port
        if self.shared:
            self.title += "  " + self.shared

    def _start_emu(self, opts: argparse.Namespace, serve: bool) -> None:
        # The emulated Pico: fresh keys onto its flash through its REPL, then a pump set
        # up over the link as a clinician would (when its flash holds no program yet).
        self.status_ms = None
        # A command that writes the pump's state costs the emulated chip tens of millions of
        # cycles: on a busy host the emulator needs seconds of wall time for what a Pico
        # does in a fraction of one.
        opts.timeout = max(getattr(opts, "timeout", 0) or 0, EMU_TIMEOUT_S)
        self.sim = emu = emu_from_options(opts)
        try:
            emu.open()
            self.store, emu.keys = self._sim_keys(opts, emu)
            self.port = emu.port
            self.link = ConsoleLink(self.port, keys=self.store, transport=self._transport(serve))
            emu.launch()
            setup_therapy(self.link, opts.program or DEFAULT_PROGRAM, opts.fill_ml, opts.clock)
        except BaseException:
            self.close()
            raise
        self.title = "Emulated Pico %s on %s  (%s)" % (emu.dev, emu.port, os.path.relpath(emu.uf2))

    def _transport(self, serve: bool) -> Any:
        # None: tools.link opens the port (or the session serving it) itself
        if not serve:
            return None
        client = session.connect(self.port)
        if client is not None:
            self.shared = "(through the session that holds it)"
            return client
        self._serial = open_serial(self.port)
        self.server = session.SessionServer(self._serial, self.port)
        self.server.start()
        self.shared = "(shared: other consoles can use --port %s)" % self.port
        return self.server.attach()

    def _sim_keys(self, opts: argparse.Namespace,
                  sim: SimPico | EmuPico) -> tuple[KeyStore, dict[str, bytes] | None]:
        # The simulated Pico gets keys in its flash before it boots, so every command
        # works on --sim. They are recorded in --keys DIR or $PUMP_KEYS_DIR when given
        # (and by `provision`, in the default store too); otherwise in a scratch store
        # that goes with the run.
        import tempfile
        provisioning = opts.command == "provision"
        explicit = getattr(opts, "keys", None) or os.environ.get(ENV_DIR)
        if explicit or provisioning:
            store = KeyStore(getattr(opts, "keys", None))
        else:
            self._scratch_store = tempfile.mkdtemp(prefix="pump-console-keys-")
            store = KeyStore(self._scratch_store)
        roles = commands.parse_roles(opts.roles) if provisioning else list(ROLES)
        # (an emulated Pico's flash file is not a folder of files: it gets fresh keys)
        keep = not provisioning and isinstance(sim, SimPico)
        return store, sim_keys(store, sim, roles, keep=keep)  # type: ignore[arg-type]

    def firmware_exited(self) -> bool:
        return self.sim is not None and self.sim.poll() is not None

    def close(self) -> None:
        link = getattr(self, "link", None)
        if link is not None:
            link.close()
        if self.server is not None:
            self.server.stop()
            self.server.join(5)
            self.server = None
        if self._serial is not None:
            try:
                self._serial.close()
            except Exception:
                pass
            self._serial = None
        if self.sim is not None:
            self.sim.stop()
        if self._scratch_store is not None:
            import shutil
            shutil.rmtree(self._scratch_store, ignore_errors=True)
            self._scratch_store = None


# ---- watch ------------------------------------------------------------------------------

class Watch:
    # The watch loop without its display: frames in, view updated, end detected. A pump
    # that sends nothing is asked for its status (SILENT_PROBE_S); `silent` says for how
    # long nothing came, so the views can ask whether its firmware runs. `days` bounds a
    # watch of a port by the pump's own time.
    def __init__(self, source: Source, on_frame: Callable[[dict[str, Any]], None], days: int = 0) -> None:
        self.source = source
        self.link = source.link
        self.dash = Dashboard(source.title)
        self.on_frame = on_frame
        self.ending: str | None = None
        self.exit_status = 0
        self.days = days if source.sim is None else 0  # a --sim run ends by itself
        self.first_up_ms: int | None = None
        self.started = time.monotonic()
        self.heard_at: float | None = None
        self.probed_at = 0.0

    def pump(self, timeout_s: float) -> bool:
        # Take what arrived; False once the run is over (self.ending says why).
        try:
            frames = self.link.receive(timeout_s)
            self._take(frames)
            self._probe()
        except LinkClosed:
            self.ending = "the port closed"
            return False
        if self.source.firmware_exited():
            self._finish_sim()
            return False
        return self.ending is None

    def silent_s(self) -> float:
        # seconds since the last frame (or since the start, before any)
        return time.monotonic() - (self.heard_at or self.started)

    def _probe(self) -> None:
        # Ask for a status at the start and after SILENT_PROBE_S without a frame: a pump
        # that sends status seldom shows at once, and a silent one is told apart.
        now = time.monotonic()
        if self.source.sim is not None and self.link.frames_in == 0:
            return  # the simulated Pico is still starting: its first frames come by themselves
        if now - self.probed_at >= SILENT_PROBE_S and (self.heard_at is None or now - self.heard_at >= SILENT_PROBE_S):
            self.probed_at = now
            try:
                self.link.send({"cmd": "status"})
            except LinkClosed:
                raise

    def _take(self, frames: list[Any]) -> None:
        for frame in frames:
            self.heard_at = time.monotonic()
            body = frame.body
            if body.get("t") == "result":
                continue  # the answers to our status probes
            if self.dash.feed(body):
                self.on_frame(body)
                if body.get("t") == "status" and self.days:
                    up = body["up_day"] * dashboard.DAY_MS + body["up_ms"]
                    if self.first_up_ms is None or up < self.first_up_ms:
                        self.first_up_ms = up  # (a restart starts the count again)
                    elif up - self.first_up_ms >= self.days * dashboard.DAY_MS:
                        self.ending = "%d day%s of the pump's time went by" % (self.days, "" if self.days == 1 else "s")

    def _finish_sim(self) -> None:
        sim = self.source.sim
        assert sim is not None
        # The firmware's last frames are still on their way through the relay and the
        # pty: take them all before summing up.
        sim.wait_drained(2.0)
        while True:
            try:
                frames = self.link.receive(DRAIN_QUIET_S)
            except LinkClosed:
                break
            if not frames:
                break
            self._take(frames)
        rc = sim.poll()
        if rc == 0:
            self.ending = "the simulated Pico finished its %d day%s" % (
                sim.days, "" if sim.days == 1 else "s") if sim.days else "the simulated Pico stopped"
        else:
            self.ending = "the simulated Pico failed (exit status %s)" % rc
            self.exit_status = 1

    def health(self) -> LinkHealth:
        return LinkHealth.of(self.link, time.monotonic())

    def silence_note(self, timeout_s: float) -> str | None:
        if self.silent_s() < timeout_s:
            return None
        if self.heard_at is None:
            return ("Nothing has come from %s for %.0f s: is the pump's firmware running? (A Pico in service "
                    "mode or at its REPL does not answer.)" % (self.source.port, self.silent_s()))
        return "No frame from the pump for %.0f s: is it still running? (unplugged, reset, at its REPL?)" % (
            self.silent_s())


def watch_plain(source: Source, as_json: bool, opts: argparse.Namespace) -> int:
    # One line per status frame (and per event): for pipes, logs and CI. No escape codes.
    out = sys.stdout

    def show(body: dict[str, Any]) -> None:
        if as_json:
            out.write(json.dumps(body, sort_keys=True) + "\n")
        elif body["t"] == "status":
            out.write(dashboard.plain_line(body) + "\n")
        else:
            out.write(dashboard.event_line(body, "event ", w.dash.events[-1][1]) + "\n")
        out.flush()

    w = Watch(source, show, getattr(opts, "days", 0) or 0)
    try:
        while w.pump(0.2):
            if w.heard_at is None and w.silent_s() >= opts.timeout:
                # a script waits for ever on a silent port otherwise
                print("console: %s" % w.silence_note(opts.timeout), file=sys.stderr)
                w.ending = "no answer from the pump"
                w.exit_status = commands.EXIT_USAGE
                break
    except KeyboardInterrupt:
        w.ending = "stopped by the user"
    _print_summary(w, as_json)
    return w.exit_status


def _print_summary(w: Watch, as_json: bool) -> None:
    ending = w.ending or "stopped"
    if as_json:
        sim = w.source.sim
        rc = sim.poll() if sim else None
        print(json.dumps(w.dash.summary_json(ending, w.health(), rc), sort_keys=True), flush=True)
    else:
        print("\n".join(w.dash.summary(ending, w.health())), flush=True)
    if w.exit_status == 1 and w.source.sim is not None:
        report_exit(w.source.sim)


def watch_live(source: Source, opts: argparse.Namespace) -> int:
    # The dashboard, redrawn in place with curses until q, Ctrl-C or the end of the run.
    import curses

    w = Watch(source, lambda body: None, getattr(opts, "days", 0) or 0)
    keys_fd = sys.stdin.fileno()

    def loop(screen: Any) -> None:
        # raw(): Ctrl-C arrives as a key, so it ends the console alone and cleanly (under
        # `make sim`, make would otherwise report the interrupt as a failure).
        curses.raw()
        painter = dashboard.Painter(curses)  # colours by alarm priority, where the terminal has them
        screen.nodelay(True)
        try:
            curses.curs_set(0)
        except curses.error:
            pass
        drawn_at = 0.0
        dirty = True
        while True:
            ready, _, _ = select.select([w.link.fd, keys_fd], [], [], REDRAW_MIN_S)
            seen = w.dash.statuses + len(w.dash.events)
            if not w.pump(0):
                return
            if w.dash.statuses + len(w.dash.events) != seen:
                dirty = True
            note = w.silence_note(max(opts.timeout, SILENT_PROBE_S + 1))
            if note != w.dash.note:
                w.dash.note = note
                dirty = True
            while True:
                key = screen.getch()
                if key == -1:
                    break
                if key in (KEY_CTRL_C, ord("q"), ord("Q")):
                    w.ending = "stopped by the user"
                    return
                if key == curses.KEY_RESIZE:
                    screen.clear()
                    dirty = True
            now = time.monotonic()
            if (dirty and now - drawn_at >= REDRAW_MIN_S) or now - drawn_at >= REDRAW_MAX_S:
                painter.draw(screen, w.dash, w.health())
                drawn_at = now
                dirty = False

    try:
        curses.wrapper(loop)
    except KeyboardInterrupt:  # SIGINT sent by another process (kill -INT)
        w.ending = "stopped by the user"
    _print_summary(w, False)
    return w.exit_status


def cmd_watch(opts: argparse.Namespace, source: Source) -> int:
    live = not (opts.plain or opts.json) and sys.stdin.isatty() and sys.stdout.isatty()
    if live:
        try:
            return watch_live(source, opts)
        except Exception as e:  # curses could not take the terminal (TERM unknown...)
            import curses
            if not isinstance(e, curses.error):
                raise
            print("console: no live view (%s); printing lines instead" % e, file=sys.stderr)
    return watch_plain(source, opts.json, opts)


# ---- session ----------------------------------------------------------------------------

def cmd_session(opts: argparse.Namespace, source: Source) -> int:
    # Hold the pump's port and serve it to other consoles until Ctrl-C (or SIGTERM), or
    # until the port closes (a simulated Pico with --days that finished).
    if source.server is None:
        print("console: a session already serves %s: use it (any console command with --port %s)"
              % (source.port, source.port), file=sys.stderr)
        return commands.EXIT_USAGE
    try:
        hello = source.link.hello(opts.timeout)
        who = "pump %s (firmware %s)" % (source.link.dev or "?", hello.get("firmware", "?"))
    except RequestTimeout as e:
        who = "a pump that does not answer yet (%s)" % e
    print(source.port, flush=True)
    print("console: session for %s on %s; other consoles: python -m tools.console COMMAND --port %s; "
          "Ctrl-C ends it" % (who, source.port, source.port), file=sys.stderr, flush=True)
    server = source.server
    try:
        while not server.closed.wait(0.2):
            try:
                source.link.receive(0)  # the session's own client: keep its socket drained
            except LinkClosed:
                break
            if source.firmware_exited():
                source.sim.wait_drained(2.0)  # type: ignore[union-attr]
                time.sleep(0.5)  # the clients take the last frames
                break
    except KeyboardInterrupt:
        pass
    if source.firmware_exited() and source.sim is not None and source.sim.poll():
        report_exit(source.sim)
        return 1
    print("console: session for %s ended" % source.port, file=sys.stderr)
    return 0


# ---- status -----------------------------------------------------------------------------

def cmd_status(opts: argparse.Namespace, source: Source) -> int:
    status = source.link.status(opts.timeout)
    if opts.json:
        print(json.dumps(status, sort_keys=True))
    else:
        print(source.title)
        rows = dashboard.status_fields(status)
        labels = {label for label, _ in rows}
        rows += [row for row in commands.status_extra(status) if row[0] not in labels]
        for row in rows:
            print("%-15s %s" % row)
    return 0


# ---- command line -----------------------------------------------------------------------

_COMMANDS = (
    ("watch", "live status until Ctrl-C (or the end of a --days run); other consoles can use the port meanwhile"),
    ("session", "hold the pump's port and share it: other consoles watch and command it through the session"),
    ("status", "the pump's status, once"),
    ("info", "who the pump is: device id, firmware, the roles it holds keys for, the key store"),
    ("program", "check a TOML program file, show how it differs from the pump's program, send it"),
    ("bolus", "a clinician bolus (--dose-ug, --minutes) or the patient bolus (--patient)"),
    ("refill", "the guided refill: residual withdrawn against expected, new fill, concentration twice"),
    ("fill", "the first fill of an empty pump: volume, concentration twice (a pump with drug: refill)"),
    ("prime", "prime the line (--part all|catheter) with the priming bolus; --wait follows it"),
    ("titrate", "change the dose by --percent N or to --dose-ug-per-day N, now, --in-min M or --at TIME"),
    ("ack", "acknowledge the pump's alarms"),
    ("silence", "silence the alarm sound for 1-15 minutes (the light stays)"),
    ("clock", "set the pump's wall clock (clock set [YYYY-MM-DDTHH:MM|now]) or show it"),
    ("alarm-settings", "show or set the reservoir alarm levels"),
    ("pause", "pause delivery: the program's keep-open rate runs"),
    ("resume", "resume the program after a pause"),
    ("cancel-bolus", "end the running bolus"),
    ("log", "export the pump's event log (log export --format csv|jsonl [-o FILE])"),
    ("plot", "a PNG plot of the pump's log and its status now, on the wall clock (plot -o FILE.png)"),
    ("report", "the visit report: identifiers, program before and after, refill, alarms, delivery (-o visit.html|.pdf)"),
    ("provision", "make new keys for a pump: on its flash and in the host key store"),
    ("keys", "the host key store: list pumps, export keys for another console"),
)


def _add_where(p: argparse.ArgumentParser, sim_options: bool = True) -> None:
    where = p.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", metavar="PATH", help="serial port of a pump, e.g. /dev/ttyACM0")
    where.add_argument("--sim", action="store_true",
                       help="start the simulated Pico (with fresh keys) and use its port")
    where.add_argument("--emu", action="store_true",
                       help="start the emulated Pico: the firmware image on an emulated RP2040 "
                            "(make firmware; docs/pico.md), with fresh keys, and use its port")
    _add_keys(p)
    if sim_options:
        group = p.add_argument_group("simulated Pico (with --sim; --emu takes --speed, --days, "
                                     "--seed, --program, --fill-ml, --clock, --flash FILE)")
        add_sim_options(group)  # type: ignore[arg-type]


def _add_keys(p: argparse.ArgumentParser) -> None:
    p.add_argument("--keys", metavar="DIR", default=None,
                   help="the host key store (default $%s, else ~/.config/pump-console/keys)" % ENV_DIR)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tools.console",
                                 description="Console of the programmable pump (docs/console.md).")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    ap.subparsers = {}  # type: ignore[attr-defined]  # name -> its parser: errors show its usage
    for name, doc in _COMMANDS:
        p = sub.add_parser(name, help=doc, description=doc)
        ap.subparsers[name] = p  # type: ignore[attr-defined]
        if name == "keys":
            p.add_argument("action", choices=("list", "export"),
                           help="list: the pumps in the store; export: a store with some roles' keys")
            _add_keys(p)
            p.add_argument("--dev", help="export: the pump's device id")
            p.add_argument("--roles", default="patient",
                           help="export: the roles whose keys to export (default %(default)s)")
            p.add_argument("--to", metavar="DIR", help="export: the other console's key store directory")
            p.add_argument("--json", action="store_true", help="one JSON object on stdout")
            continue
        _add_where(p)
        if name != "log":
            p.add_argument("--json", action="store_true",
                           help="JSON: frame bodies, one per line" if name == "watch" else
                           "one JSON object on stdout (messages go to stderr)")
        if name == "watch":
            p.add_argument("--plain", action="store_true",
                           help="one line per frame even on a terminal")
            p.add_argument("--timeout", type=float, default=5.0,
                           help="seconds without a frame before saying so (without a terminal: giving up, "
                                "exit 2); default %(default)s")
            continue
        p.add_argument("--timeout", type=float, default=3.0,
                       help="seconds to wait for each answer of the pump (default %(default)s)")
        if name in ("program", "titrate"):
            p.add_argument("--confirm-daily-dose", metavar="UG", default=None,
                           help="a large change of the daily dose (over 20 %%, or outside the usual range) asks "
                                "for the new daily dose to be typed; scripts give it here, in µg/day")
        if name == "program":
            p.add_argument("file", help="TOML program file (docs/programs.md)")
            p.add_argument("--board", choices=("sim", "pico"), default=None,
                           help="the pump head to check the file against (default: the simulated Pico's "
                                "for a pump whose device id is sim-N, else the Pico's)")
            p.add_argument("--no-bolus", action="store_true",
                           help="do not give the file's [clinician_bolus]")
        elif name == "bolus":
            p.add_argument("--dose-ug", metavar="UG", help="clinician bolus: the dose in µg (e.g. 50 or 12.5)")
            p.add_argument("--minutes", type=int, help="clinician bolus: its duration in minutes")
            p.add_argument("--patient", action="store_true",
                           help="the patient bolus the program allows (patient key)")
            p.add_argument("--wait", action="store_true", help="follow the bolus until it ends")
        elif name == "refill":
            p.add_argument("--withdrawn-ml", metavar="ML", help="the residual withdrawn, mL")
            p.add_argument("--volume-ml", metavar="ML", help="the new fill volume, mL")
            p.add_argument("--conc", metavar="UG_PER_ML", help="the new drug's concentration, µg/mL")
            p.add_argument("--conc-again", metavar="UG_PER_ML", help="the concentration once more, from the label")
            p.add_argument("--bridge", action=argparse.BooleanOptionalAction, default=None,
                           help="a concentration change: give the old drug in the line as a bridge")
        elif name == "fill":
            p.add_argument("--volume-ml", metavar="ML", help="the fill volume, mL")
            p.add_argument("--conc", metavar="UG_PER_ML", help="the drug's concentration, µg/mL")
            p.add_argument("--conc-again", metavar="UG_PER_ML", help="the concentration once more, from the label")
        elif name == "prime":
            p.add_argument("--part", choices=commands.PRIME_PARTS, default="all",
                           help="all: the pump's tubing and the catheter (default); catheter: the catheter "
                                "alone, after a revision")
            p.add_argument("--wait", action="store_true", help="follow the priming until it ends")
        elif name == "titrate":
            p.add_argument("--percent", metavar="N",
                           help="change every step's dose by N %% (-90..100, e.g. -20 or 15)")
            p.add_argument("--dose-ug-per-day", metavar="UG",
                           help="scale each day profile to this many µg a day (e.g. 250 or 187.5)")
            p.add_argument("--in-min", metavar="M", default=None,
                           help="take effect in M minutes (0..%d; default 0: now)" % commands.TITRATE_IN_MIN_MAX)
            p.add_argument("--at", metavar="YYYY-MM-DDTHH:MM", default=None,
                           help="take effect at this time on the pump's wall clock (within %d days; HH:MM "
                                "alone: the next such time)" % (commands.TITRATE_IN_MIN_MAX // 1440))
        elif name in ("ack", "silence"):
            p.add_argument("--role", choices=ROLES, default=None,
                           help="sign as this role (default: clinician if this console holds that key, "
                                "else patient)")
            if name == "silence":
                p.add_argument("--minutes", type=int, required=True, help="1-15")
        elif name == "clock":
            p.add_argument("action", choices=("set", "show"))
            p.add_argument("when", nargs="?", default="now",
                           help="set: YYYY-MM-DDTHH:MM or now (this computer's local time; the default)")
        elif name == "alarm-settings":
            p.add_argument("--low-ml", metavar="ML", help="reservoir_low below this volume")
            p.add_argument("--low-days", metavar="DAYS", help="reservoir_days when empty within this many days")
            p.add_argument("--empty-floor-ml", metavar="ML", help="the reservoir's unusable residual")
        elif name == "log":
            p.add_argument("action", choices=("export",))
            p.add_argument("--format", choices=sorted(commands.logformat.FORMATS), default="csv",
                           help="csv (a row per record) or jsonl (a JSON object per line); default %(default)s")
            p.add_argument("-o", "--output", metavar="FILE", default=None,
                           help="write here (mode 0600) instead of standard output")
        elif name == "plot":
            p.add_argument("-o", "--output", metavar="FILE.png", required=True,
                           help="the PNG to write (mode 0600: it shows health data)")
            p.add_argument("--size", metavar="WxH", default=None,
                           help="picture size in pixels (default 1200x1500)")
            p.add_argument("--title", default=None, help="the picture's title (default: drug, dates, records)")
        elif name == "report":
            p.add_argument("-o", "--output", metavar="FILE", required=True,
                           help="visit.html, or visit.pdf (printed by Chromium, which must be installed: "
                                "apt-get install chromium); mode 0600")
            p.add_argument("--patient", metavar="TEXT", default="",
                           help="the patient as the report should name them (the pump does not know)")
            p.add_argument("--since", metavar="YYYY-MM-DD", default=None,
                           help="the last visit: alarms and delivery from then on (default: the refill or fill "
                                "before today, else the whole log)")
        elif name == "provision":
            p.add_argument("--roles", default=",".join(ROLES),
                           help="comma-separated roles to make keys for (default %(default)s)")
            p.add_argument("--dev", help="--port: the Pico's device id (default: read with mpremote)")
            p.add_argument("--mpremote", default=None, help="--port: mpremote executable (default: the venv's)")
            p.add_argument("--resume", action="store_true",
                           help="--port: no soft reset on connect (a unix-port REPL)")
            p.add_argument("--no-reset", action="store_true", help="--port: do not reset the Pico afterwards")
        if name in ("program", "bolus", "refill", "fill", "prime", "titrate", "provision"):
            p.add_argument("--yes", action="store_true", help="do not ask for confirmation (scripts)")
    return ap


def check_options(ap: argparse.ArgumentParser, opts: argparse.Namespace,
                  argv: list[str] | None = None) -> None:
    # Errors name the command's usage, not the console's.
    sub = getattr(ap, "subparsers", {}).get(opts.command, ap)
    if opts.command == "bolus":
        if opts.patient and (opts.dose_ug is not None or opts.minutes is not None):
            sub.error("--patient takes no --dose-ug or --minutes (the program sets them)")
        if not opts.patient and (opts.dose_ug is None or opts.minutes is None):
            sub.error("give --dose-ug and --minutes (a clinician bolus), or --patient")
    if opts.command == "titrate":
        if opts.at is not None and opts.in_min is not None:
            sub.error("give --in-min or --at, not both")
        try:
            commands.titration_args(opts)
            if opts.at is not None:
                commands.parse_at(opts.at)
        except UserError as e:
            sub.error(str(e))
    if getattr(opts, "confirm_daily_dose", None) is not None:
        try:
            commands.parse_amount(opts.confirm_daily_dose, 3, "µg/day", "--confirm-daily-dose", allow_zero=False)
        except UserError as e:
            sub.error(str(e))
    if opts.command == "silence" and not 1 <= opts.minutes <= 15:
        sub.error("--minutes is 1..15")
    if opts.command == "clock" and opts.action == "show" and opts.when != "now":
        sub.error("clock show takes no time")
    if opts.command == "provision":
        try:
            commands.parse_roles(opts.roles)
        except UserError as e:
            sub.error(str(e))
    if opts.command == "plot" and opts.size is not None:
        try:
            commands.parse_size(opts.size)
        except UserError as e:
            sub.error(str(e))
    if getattr(opts, "sim", False) or getattr(opts, "emu", False):
        check_sim_options(sub, opts)
    if getattr(opts, "emu", False):
        problem = check_emu_options(opts)
        if problem:
            sub.error(problem)
    elif not getattr(opts, "sim", False) and getattr(opts, "port", None) and argv is not None:
        allowed = ("--days",) if opts.command == "watch" else ()
        for arg in argv:
            name = arg.split("=", 1)[0]
            if name in SIM_ONLY_OPTIONS and name not in allowed or name == "--days" and not allowed:
                sub.error("%s sets up a simulated Pico: give it with --sim, not --port" % name)


_HANDLERS: dict[str, Callable[..., int]] = {
    "info": commands.cmd_info,
    "bolus": commands.cmd_bolus,
    "refill": commands.cmd_refill,
    "fill": commands.cmd_fill,
    "prime": commands.cmd_prime,
    "titrate": commands.cmd_titrate,
    "ack": commands.cmd_ack,
    "silence": commands.cmd_silence,
    "clock": commands.cmd_clock,
    "alarm-settings": commands.cmd_alarm_settings,
    "pause": commands.cmd_simple,
    "resume": commands.cmd_simple,
    "cancel-bolus": commands.cmd_simple,
    "log": commands.cmd_log,
    "plot": commands.cmd_plot,
    "report": commands.cmd_report,
}


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = parser()
    opts = ap.parse_args(argv)
    check_options(ap, opts, argv)
    ui = Ui(opts)
    cmd = opts.command
    pf = None
    try:
        # Commands that need no running pump, and checks that come before any.
        if cmd == "keys":
            return commands.cmd_keys(opts, KeyStore(opts.keys), ui)
        if cmd == "provision" and opts.port:
            return commands.provision_pico(opts, KeyStore(opts.keys), ui)
        if cmd == "program" and (opts.board or opts.sim):
            # the pump head is known: check the file before starting anything (otherwise
            # cmd_program checks it against the head the pump's device id names)
            pf = commands.load_program_file(opts.file, opts.board or "sim")
    except (UserError, KeyStoreError, Cancelled) as e:
        return commands.report_error(e, ui, cmd)
    except KeyboardInterrupt:
        return commands.report_error(Cancelled(), ui, cmd)
    raise_on_termination()
    source: Source | None = None
    try:
        try:
            source = Source(opts, serve=cmd in ("watch", "session"))
        except (KeyStoreError, PortError) as e:
            return commands.report_error(UserError(str(e)) if isinstance(e, PortError) else e, ui, cmd)
        except (OSError, ValueError) as e:  # no micropython, a scratch dir that cannot be made...
            return commands.report_error(UserError(str(e)), ui, cmd)
        if cmd == "watch":
            return cmd_watch(opts, source)
        try:
            if cmd == "session":
                return cmd_session(opts, source)
            if cmd == "status":
                return cmd_status(opts, source)
            if cmd == "program":
                return commands.cmd_program(opts, source.link, ui, pf)
            if cmd == "provision":
                return commands.provisioned_sim(opts, source.link, source.store, ui)
            return _HANDLERS[cmd](opts, source.link, ui)
        except (CommandError, UserError, KeyStoreError, RequestTimeout, Cancelled) as e:
            status = commands.report_error(e, ui, cmd)
            if source.sim is not None and source.sim.poll() is not None:
                report_exit(source.sim)
            return status
        except LinkClosed as e:
            status = commands.report_error(UserError("the port closed: %s" % e), ui, cmd)
            if source.sim is not None:
                report_exit(source.sim)
            return status
    except KeyboardInterrupt:
        link = getattr(source, "link", None)
        if cmd in ("watch", "session") or link is None or not getattr(link, "sent_cmd", None):
            return commands.report_error(Cancelled(), ui, cmd) if cmd not in ("watch", "session") else 0
        if link.answered:
            ui.note("Interrupted: the pump had already accepted `%s`." % link.sent_cmd)
        else:
            ui.note("Interrupted: `%s` was sent and no answer came yet: the pump may have carried it out. Check "
                    "with `python -m tools.console status --port %s` before sending it again."
                    % (link.sent_cmd, link.port))
        ui.emit({"ok": False, "cmd": cmd, "error": "interrupted", "sent": link.sent_cmd, "answered": link.answered})
        return EXIT_INTERRUPTED
    except Stopped as e:
        return 128 + e.signum
    except BrokenPipeError:
        # The reader of our output went away (`| head`): nothing left to tell anyone.
        sys.stdout = open(os.devnull, "w")
        return 0
    finally:
        if source is not None:
            source.close()


if __name__ == "__main__":
    sys.exit(main())
