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

from tools import commands, dashboard
from tools.commands import Cancelled, Ui, UserError
from tools.dashboard import Dashboard, LinkHealth
from tools.keystore import ENV_DIR, ROLES, KeyStore, KeyStoreError
from tools.link import CommandError, Link, LinkClosed, RequestTimeout
from tools.emupico import EmuPico, check_emu_options, emu_from_options, setup_therapy
from tools.simpico import (DEFAULT_PROGRAM, KEYS_FILE, SimPico, Stopped, add_sim_options, check_sim_options,
                           raise_on_termination, report_exit, sim_from_options,
                           status_period_ms)

REDRAW_MIN_S = 0.05  # at most 20 redraws a second, however fast frames come
REDRAW_MAX_S = 0.5  # and at least two, so "last frame ... ago" keeps counting
DRAIN_QUIET_S = 0.3  # after the firmware exits: read until the port is this long quiet
KEY_CTRL_C = 3
EMU_TIMEOUT_S = 60.0  # --emu: the least wait for a command's answer


class Source:
    # Where frames come from: a port given by path, or a simulated Pico started here.
    # Either way self.link signs commands with self.store, the host key store.
    def __init__(self, opts: argparse.Namespace) -> None:
        self.sim: SimPico | EmuPico | None = None
        self._scratch_store: str | None = None
        if getattr(opts, "emu", False):
            self._start_emu(opts)
        elif opts.sim:
            self.status_ms = opts.status_ms or status_period_ms(opts.speed)
            self.sim = sim_from_options(opts, self.status_ms)
            try:
                self.store, self.sim.keys = self._sim_keys(opts, self.sim)
                self.sim.open()
                # Attach before the firmware starts, so its power-up events are seen too.
                self.link = Link(self.sim.port, keys=self.store)
                self.sim.launch()
            except BaseException:
                self.close()
                raise
            speed = "as fast as possible" if opts.speed == 0 else "%dx" % opts.speed
            days = ", %d days" % opts.days if opts.days else ""
            self.title = "Simulated Pico on %s  (%s%s, seed %d, status every %s)" % (
                self.sim.port, speed, days, opts.seed, dashboard.duration_ms(self.status_ms))
        else:
            self.store = KeyStore(getattr(opts, "keys", None))
            self.link = Link(opts.port, keys=self.store)
            self.title = "Pump on %s" % opts.port

    def _start_emu(self, opts: argparse.Namespace) -> None:
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
            self.link = Link(emu.port, keys=self.store)
            emu.launch()
            setup_therapy(self.link, opts.program or DEFAULT_PROGRAM, opts.fill_ml, opts.clock)
        except BaseException:
            self.close()
            raise
        self.title = "Emulated Pico %s on %s  (%s)" % (emu.dev, emu.port, os.path.relpath(emu.uf2))

    def _sim_keys(self, opts: argparse.Namespace, sim: SimPico | EmuPico) -> tuple[KeyStore, dict[str, bytes] | None]:
        # The simulated Pico gets keys in its flash before it boots, so every command
        # works on --sim. They are recorded in --keys DIR or $PUMP_KEYS_DIR when given
        # (and by `provision`, in the default store too); otherwise in a scratch store
        # that goes with the run. A kept --flash whose keys file the store still matches
        # keeps its keys. Returns (store, keys to write, or None to leave the file).
        import tempfile
        from pump import auth
        provisioning = opts.command == "provision"
        explicit = getattr(opts, "keys", None) or os.environ.get(ENV_DIR)
        if explicit or provisioning:
            store = KeyStore(getattr(opts, "keys", None))
        else:
            self._scratch_store = tempfile.mkdtemp(prefix="pump-console-keys-")
            store = KeyStore(self._scratch_store)
        roles = commands.parse_roles(opts.roles) if provisioning else list(ROLES)
        if opts.flash and not provisioning and isinstance(sim, SimPico):
            try:
                with open(os.path.join(opts.flash, KEYS_FILE), "rb") as f:
                    on_flash, problem = auth.parse_keys(f.read(), sim.dev)
            except OSError:
                on_flash, problem = {}, "none"
            entry = store.load(sim.dev)
            if not problem and on_flash and entry is not None and entry.keys == on_flash:
                return store, None
        return store, store.provision(sim.dev, roles)

    def firmware_exited(self) -> bool:
        return self.sim is not None and self.sim.poll() is not None

    def close(self) -> None:
        link = getattr(self, "link", None)
        if link is not None:
            link.close()
        if self.sim is not None:
            self.sim.stop()
        if self._scratch_store is not None:
            import shutil
            shutil.rmtree(self._scratch_store, ignore_errors=True)
            self._scratch_store = None


# ---- watch ------------------------------------------------------------------------------

class Watch:
    # The watch loop without its display: frames in, view updated, end detected.
    def __init__(self, source: Source, on_frame: Callable[[dict[str, Any]], None]) -> None:
        self.source = source
        self.link = source.link
        self.dash = Dashboard(source.title)
        self.on_frame = on_frame
        self.ending: str | None = None
        self.exit_status = 0

    def pump(self, timeout_s: float) -> bool:
        # Take what arrived; False once the run is over (self.ending says why).
        try:
            frames = self.link.receive(timeout_s)
        except LinkClosed:
            self.ending = "the port closed"
            return False
        self._take(frames)
        if self.source.firmware_exited():
            self._finish_sim()
            return False
        return True

    def _take(self, frames: list[Any]) -> None:
        for frame in frames:
            if self.dash.feed(frame.body):
                self.on_frame(frame.body)

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


def watch_plain(source: Source, as_json: bool) -> int:
    # One line per status frame (and per event): for pipes, logs and CI. No escape codes.
    out = sys.stdout

    def show(body: dict[str, Any]) -> None:
        if as_json:
            out.write(json.dumps(body, sort_keys=True) + "\n")
        elif body["t"] == "status":
            out.write(dashboard.plain_line(body) + "\n")
        else:
            out.write(dashboard.event_line(body, "event ") + "\n")
        out.flush()

    w = Watch(source, show)
    try:
        while w.pump(0.2):
            pass
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
    if w.exit_status and w.source.sim is not None:
        report_exit(w.source.sim)


def watch_live(source: Source) -> int:
    # The dashboard, redrawn in place with curses until q, Ctrl-C or the end of the run.
    import curses

    w = Watch(source, lambda body: None)
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
            return watch_live(source)
        except Exception as e:  # curses could not take the terminal (TERM unknown...)
            import curses
            if not isinstance(e, curses.error):
                raise
            print("console: no live view (%s); printing lines instead" % e, file=sys.stderr)
    return watch_plain(source, opts.json)


# ---- status -----------------------------------------------------------------------------

def cmd_status(opts: argparse.Namespace, source: Source) -> int:
    try:
        status = source.link.status(opts.timeout)
    except RequestTimeout as e:
        print("console: %s" % e, file=sys.stderr)
        if source.sim is not None and source.sim.poll() is not None:
            report_exit(source.sim)
        return 2
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
    ("watch", "live status until Ctrl-C (or the end of a --days run)"),
    ("status", "the pump's status, once"),
    ("info", "who the pump is: device id, firmware, the roles it holds keys for, the key store"),
    ("program", "check a TOML program file, show how it differs from the pump's program, send it"),
    ("bolus", "a clinician bolus (--dose-ug, --minutes) or the patient bolus (--patient)"),
    ("refill", "the guided refill: residual withdrawn against expected, new fill, concentration twice"),
    ("fill", "the first fill of an empty pump: volume, concentration twice (a pump with drug: refill)"),
    ("prime", "prime the line (--part all|catheter) with the priming bolus; --wait follows it"),
    ("titrate", "change the dose by --percent N or to --dose-ug-per-day N, now or --in-min M"),
    ("ack", "acknowledge the pump's alarms"),
    ("silence", "silence the alarm sound for 1-15 minutes (the light stays)"),
    ("clock", "set the pump's wall clock (clock set [YYYY-MM-DDTHH:MM|now]) or show it"),
    ("alarm-settings", "show or set the reservoir alarm levels"),
    ("pause", "pause delivery: the program's keep-open rate runs"),
    ("resume", "resume the program after a pause"),
    ("cancel-bolus", "end the running bolus"),
    ("log", "export the pump's event log (log export --format csv|jsonl [-o FILE])"),
    ("plot", "a PNG plot of the pump's log (plot -o FILE.png)"),
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
    for name, doc in _COMMANDS:
        p = sub.add_parser(name, help=doc, description=doc)
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
            continue
        p.add_argument("--timeout", type=float, default=3.0,
                       help="seconds to wait for each answer of the pump (default %(default)s)")
        if name == "program":
            p.add_argument("file", help="TOML program file (docs/programs.md)")
            p.add_argument("--board", choices=("sim", "pico"), default=None,
                           help="the pump head to check the file against (default: the simulated Pico's "
                                "for a pump whose device id is sim-N, else the Pico's)")
            p.add_argument("--no-bolus", action="store_true",
                           help="do not give the file's [clinician_bolus]")
        elif name == "bolus":
            p.add_argument("--dose-ug", metavar="UG", help="clinician bolus: the dose in ug (e.g. 50 or 12.5)")
            p.add_argument("--minutes", type=int, help="clinician bolus: its duration in minutes")
            p.add_argument("--patient", action="store_true",
                           help="the patient bolus the program allows (patient key)")
            p.add_argument("--wait", action="store_true", help="follow the bolus until it ends")
        elif name == "refill":
            p.add_argument("--withdrawn-ml", metavar="ML", help="the residual withdrawn, mL")
            p.add_argument("--volume-ml", metavar="ML", help="the new fill volume, mL")
            p.add_argument("--conc", metavar="UG_PER_ML", help="the new drug's concentration, ug/mL")
            p.add_argument("--conc-again", metavar="UG_PER_ML", help="the concentration once more, from the label")
            p.add_argument("--bridge", action=argparse.BooleanOptionalAction, default=None,
                           help="a concentration change: give the old drug in the line as a bridge")
        elif name == "fill":
            p.add_argument("--volume-ml", metavar="ML", help="the fill volume, mL")
            p.add_argument("--conc", metavar="UG_PER_ML", help="the drug's concentration, ug/mL")
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
                           help="scale each day profile to this many ug a day (e.g. 250 or 187.5)")
            p.add_argument("--in-min", metavar="M", default="0",
                           help="take effect in M minutes (0..%d; default 0: now)" % commands.TITRATE_IN_MIN_MAX)
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
            p.add_argument("-o", "--output", metavar="FILE.png", required=True)
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


def check_options(ap: argparse.ArgumentParser, opts: argparse.Namespace) -> None:
    if opts.command == "bolus":
        if opts.patient and (opts.dose_ug is not None or opts.minutes is not None):
            ap.error("bolus: --patient takes no --dose-ug or --minutes (the program sets them)")
        if not opts.patient and (opts.dose_ug is None or opts.minutes is None):
            ap.error("bolus: give --dose-ug and --minutes (a clinician bolus), or --patient")
    if opts.command == "titrate":
        try:
            commands.titration_args(opts)
        except UserError as e:
            ap.error(str(e))
    if opts.command == "silence" and not 1 <= opts.minutes <= 15:
        ap.error("silence: --minutes is 1..15")
    if opts.command == "clock" and opts.action == "show" and opts.when != "now":
        ap.error("clock show takes no time")
    if opts.command == "provision":
        try:
            commands.parse_roles(opts.roles)
        except UserError as e:
            ap.error(str(e))
    if getattr(opts, "sim", False) or getattr(opts, "emu", False):
        check_sim_options(ap, opts)
    if getattr(opts, "emu", False):
        problem = check_emu_options(opts)
        if problem:
            ap.error(problem)


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
}


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    opts = ap.parse_args(argv)
    check_options(ap, opts)
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
    raise_on_termination()
    source: Source | None = None
    try:
        try:
            source = Source(opts)
        except KeyStoreError as e:
            return commands.report_error(e, ui, cmd)
        except (OSError, ValueError) as e:  # no such port, not a tty, no micropython...
            print("console: %s" % e, file=sys.stderr)
            return 2
        if cmd == "watch":
            return cmd_watch(opts, source)
        if cmd == "status":
            return cmd_status(opts, source)
        try:
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
            print("console: the port closed: %s" % e, file=sys.stderr)
            if source.sim is not None:
                report_exit(source.sim)
            return 2
    except KeyboardInterrupt:
        return 0
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
