"""The pump's serial console: watch a pump (or the simulated Pico) live, or ask its status.

    python -m tools.console watch --sim                 # live dashboard, Ctrl-C quits
    python -m tools.console watch --sim --days 30 --speed 0 | tail   # scripted
    python -m tools.console status --port /dev/ttyACM0 --json

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

from tools import dashboard
from tools.dashboard import Dashboard, LinkHealth
from tools.link import Link, LinkClosed, RequestTimeout
from tools.simpico import (SimPico, Stopped, add_sim_options, check_sim_options,
                           raise_on_termination, report_exit, sim_from_options,
                           status_period_ms)

REDRAW_MIN_S = 0.05  # at most 20 redraws a second, however fast frames come
REDRAW_MAX_S = 0.5  # and at least two, so "last frame ... ago" keeps counting
DRAIN_QUIET_S = 0.3  # after the firmware exits: read until the port is this long quiet
KEY_CTRL_C = 3


class Source:
    # Where frames come from: a port given by path, or a simulated Pico started here.
    def __init__(self, opts: argparse.Namespace) -> None:
        self.sim: SimPico | None = None
        if opts.sim:
            self.status_ms = opts.status_ms or status_period_ms(opts.speed)
            self.sim = sim_from_options(opts, self.status_ms)
            try:
                self.sim.open()
                # Attach before the firmware starts, so its power-up events are seen too.
                self.link = Link(self.sim.port)
                self.sim.launch()
            except BaseException:
                self.sim.stop()
                raise
            speed = "as fast as possible" if opts.speed == 0 else "%dx" % opts.speed
            days = ", %d days" % opts.days if opts.days else ""
            self.title = "Simulated Pico on %s  (%s%s, seed %d, status every %s)" % (
                self.sim.port, speed, days, opts.seed, dashboard.duration_ms(self.status_ms))
        else:
            self.link = Link(opts.port)
            self.title = "Pump on %s" % opts.port

    def firmware_exited(self) -> bool:
        return self.sim is not None and self.sim.poll() is not None

    def close(self) -> None:
        self.link.close()
        if self.sim is not None:
            self.sim.stop()


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
                _draw(screen, w.dash.lines(w.health()))
                drawn_at = now
                dirty = False

    try:
        curses.wrapper(loop)
    except KeyboardInterrupt:  # SIGINT sent by another process (kill -INT)
        w.ending = "stopped by the user"
    _print_summary(w, False)
    return w.exit_status


def _draw(screen: Any, lines: list[str]) -> None:
    import curses

    height, width = screen.getmaxyx()
    screen.erase()
    for row, line in enumerate(dashboard.fit(lines[:height], width)):
        try:
            screen.addstr(row, 0, line, curses.A_BOLD if row == 0 else 0)
        except curses.error:
            pass  # a terminal shrunk under us: the next resize redraws
    screen.refresh()


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
        for row in dashboard.status_fields(status):
            print("%-15s %s" % row)
    return 0


# ---- command line -----------------------------------------------------------------------

def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m tools.console",
                                 description="Console of the programmable pump.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, doc in (("watch", "live status until Ctrl-C (or the end of a --days run)"),
                      ("status", "the pump's status, once")):
        p = sub.add_parser(name, help=doc, description=doc)
        where = p.add_mutually_exclusive_group(required=True)
        where.add_argument("--port", metavar="PATH", help="serial port of a pump, e.g. /dev/ttyACM0")
        where.add_argument("--sim", action="store_true",
                           help="start the simulated Pico and use its port")
        p.add_argument("--json", action="store_true", help="JSON: frame bodies, one per line")
        if name == "watch":
            p.add_argument("--plain", action="store_true",
                           help="one line per frame even on a terminal")
        else:
            p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for the answer")
        group = p.add_argument_group("simulated Pico (with --sim)")
        add_sim_options(group)  # type: ignore[arg-type]
    return ap


def main(argv: list[str] | None = None) -> int:
    ap = parser()
    opts = ap.parse_args(argv)
    if opts.sim:
        check_sim_options(ap, opts)
    raise_on_termination()
    source: Source | None = None
    try:
        try:
            source = Source(opts)
        except (OSError, ValueError) as e:  # no such port, not a tty, no micropython...
            print("console: %s" % e, file=sys.stderr)
            return 2
        if opts.command == "watch":
            return cmd_watch(opts, source)
        return cmd_status(opts, source)
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
