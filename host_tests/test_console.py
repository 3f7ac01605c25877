# The console as its users run it: `make sim`, scripted bounded runs, one-shot status,
# Ctrl-C, and the live dashboard in a real terminal (tmux).
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from boards.sim import config
from procs import firmware_processes, wait_until
from tools import dashboard
from tools.simpico import status_period_ms

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONSOLE = [sys.executable, "-m", "tools.console"]
DAY_MS = 86400000
STROKES_PER_DAY = 200 * 1000 * 1000 // (500 * config.STROKE_NL)  # baclofen:500:200
NG_PER_STROKE = 500 * config.STROKE_NL // 1000
assert STROKES_PER_DAY == 1600 and NG_PER_STROKE == 125


def exact(n, places):
    # An independent exact rendering (decimal module) to check the console's against.
    return format((Decimal(n) / (10 ** places)).normalize(), "f")


def console(*args, timeout=60):
    return subprocess.run(CONSOLE + list(args), cwd=ROOT, stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=timeout)


# ---- exact figures ----------------------------------------------------------------------

@given(st.integers(-10 ** 12, 10 ** 12), st.integers(0, 9))
def test_decimal_is_exact(n, places):
    assert Decimal(dashboard.decimal(n, places)) == Decimal(n) / (10 ** places)
    assert dashboard.decimal(n, places) == exact(n, places)


def test_units_read_as_a_clinician_reads_them():
    assert dashboard.ml(1199750) == "1.19975 mL"
    assert dashboard.ml(20000000) == "20 mL"
    assert dashboard.ml_per_day(150000) == "0.15 mL/day"
    assert dashboard.drug(1) == "0.001 µg"
    assert dashboard.drug(999999) == "999.999 µg"
    assert dashboard.drug(1000000) == "1 mg"
    assert dashboard.drug(5999875) == "5.999875 mg"
    assert dashboard.sim_time(30, 3723000) == "day 30 01:02:03"
    # rounded down: 20 mL at 0.15 mL/day is 133.33 days, shown as 133.3, never 133.4
    assert dashboard.days_left(20000000, 150000) == "133.3 days"
    assert dashboard.days_left(19999999, 400000) == "49.9 days"
    assert dashboard.days_left(5, 0) == "no delivery"


@pytest.mark.parametrize("speed", [1, 60, 600, 3600, 86400, 10 ** 6])
def test_default_status_period_gives_a_few_frames_a_second_and_divides_a_day(speed):
    period = status_period_ms(speed)
    assert DAY_MS % period == 0
    frames_per_real_s = speed * 1000 / period
    assert 2 <= frames_per_real_s <= 10 or period == DAY_MS
    assert status_period_ms(0) == 6 * 3600000


# ---- scripted runs ----------------------------------------------------------------------

def _check_summary(text, days):
    strokes = re.search(r"Strokes +(\d+) programmed +(\d+) confirmed +(\d+) unconfirmed", text)
    assert strokes, text
    programmed, confirmed, unconfirmed = map(int, strokes.groups())
    assert programmed == days * STROKES_PER_DAY
    assert unconfirmed == 0
    assert programmed - 1 <= confirmed <= programmed  # the last stroke may still be turning
    delivered_nl = confirmed * config.STROKE_NL
    delivered_ng = confirmed * NG_PER_STROKE
    drug = exact(delivered_ng, 3) + " µg" if delivered_ng < 10 ** 6 else exact(delivered_ng, 6) + " mg"
    assert "Delivered     %s mL  %s" % (exact(delivered_nl, 6), drug) in text
    assert "Reservoir     %s mL" % exact(20000000 - delivered_nl, 6) in text


def test_bounded_watch_without_a_terminal_prints_lines_and_an_exact_summary(tmp_path):
    days = 3
    proc = console("watch", "--sim", "--days", str(days), "--speed", "0",
                   "--flash", str(tmp_path / "flash"))
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    assert "\x1b" not in out  # no escape codes in a pipe
    # every status line; the first may say idle (sent while the bench set-up ran)
    # on the pump's wall clock (set on first boot to 2024-01-01 00:00); the first status
    # may say idle, and may come before the clock was set (its time since power-up)
    status_lines = [line for line in out.splitlines()
                    if re.match(r"(2024-01-\d\d|day \d+) [\d:]+  (running|idle)", line)]
    assert len(status_lines) == days * 4 + 1  # every 6 simulated hours, 00:00 to the end
    assert status_lines[-1].startswith("2024-01-%02d 00:00:00" % (days + 1))
    assert "event power-up 1 (fresh state, clock not set)" in out  # attached before the firmware started
    summary = out[out.index("Run ended: the simulated Pico finished its %d days" % days):]
    assert "Last status, at 2024-01-%02d 00:00:00 (pump time day %d 00:00:00)" % (days + 1, days) in summary
    _check_summary(summary, days)
    event_lines = [line for line in out.splitlines() if re.match(r"(2024-01-\d\d|day \d+) [\d:]+  event ", line)]
    assert "Link          %d frames received, 0 lost" % (len(status_lines) + len(event_lines)) in summary
    assert "Link errors   0 bad CRC, 0 malformed, 0 garbage bytes" in summary


def test_make_sim_runs_scripted_without_a_terminal():
    # The Makefile's contract: make sim ARGS="--days 30 --speed 0" ends by itself.
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    proc = subprocess.run(["make", "-s", "-o", ".venv/.installed", "sim", "ARGS=--days 30 --speed 0"],
                          cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr
    _check_summary(proc.stdout[proc.stdout.index("Run ended"):], 30)


def test_watch_json_gives_frame_bodies_and_a_summary(tmp_path):
    proc = console("watch", "--sim", "--days", "1", "--speed", "0", "--json",
                   "--flash", str(tmp_path / "flash"))
    assert proc.returncode == 0, proc.stderr
    bodies = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {b["t"] for b in bodies} == {"event", "status", "summary"}
    summary = bodies[-1]
    assert summary["t"] == "summary" and summary["exit_status"] == 0
    assert summary["status"] == [b for b in bodies if b["t"] == "status"][-1]
    assert summary["status"]["strokes_programmed"] == STROKES_PER_DAY
    assert summary["link"]["lost"] == 0


def test_status_once_as_json_and_as_text(tmp_path):
    proc = console("status", "--sim", "--json", "--flash", str(tmp_path / "a"))
    assert proc.returncode == 0, proc.stderr
    status = json.loads(proc.stdout)
    assert status["t"] == "status" and status["drug"] == "baclofen"
    assert status["rate_nl_per_day"] == 400000
    proc = console("status", "--sim", "--program", "baclofen:2000:300", "--flash", str(tmp_path / "b"))
    assert proc.returncode == 0, proc.stderr
    assert "Program         baclofen  2000 µg/mL  300 µg/day" in proc.stdout
    assert "Rate            0.15 mL/day" in proc.stdout
    assert firmware_processes(str(tmp_path)) == []


def test_status_of_a_port_that_does_not_exist_fails_cleanly():
    proc = console("status", "--port", "/dev/no-such-pump")
    assert proc.returncode == 2
    assert "no-such-pump" in proc.stderr and "Traceback" not in proc.stderr


def test_ctrl_c_ends_watch_with_status_0_and_no_firmware_left(tmp_path):
    marker = str(tmp_path / "flash")
    watch = subprocess.Popen(CONSOLE + ["watch", "--sim", "--flash", marker], cwd=ROOT,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        while "running" not in watch.stdout.readline():  # a status line: it runs
            pass
        assert len(firmware_processes(marker)) == 1
        watch.send_signal(signal.SIGINT)
        out, err = watch.communicate(timeout=10)
        assert watch.returncode == 0, err
        assert "Run ended: stopped by the user" in out
        assert "Traceback" not in err
        assert firmware_processes(marker) == []
    finally:
        watch.kill()
        watch.wait()


# ---- the live dashboard in a real terminal ------------------------------------------------

class Tmux:
    # A private tmux server (its own socket), so a developer's sessions are never touched.
    def __init__(self):
        self.socket = "console-test-" + uuid.uuid4().hex[:8]

    def __call__(self, *args):
        return subprocess.run(["tmux", "-L", self.socket] + list(args),
                              capture_output=True, text=True, timeout=10)

    def screen(self, history=False):
        # history: the scrollback too (never holds the alternate screen's content)
        return self("capture-pane", "-p", "-t", "live", *(["-S", "-"] if history else [])).stdout

    def kill(self):
        self("kill-server")


def test_live_dashboard_in_a_terminal_moves_and_ctrl_c_restores_it(tmp_path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux): the live view needs a "
                    "real terminal to be tested in")
    marker = str(tmp_path / "flash")
    done = tmp_path / "done"
    command = "%s -m tools.console watch --sim --flash %s; echo $? > %s; stty -a > %s.stty" % (
        sys.executable, marker, done, done)
    tmux = Tmux()
    try:
        started = tmux("-f", "/dev/null", "new-session", "-d", "-s", "live", "-x", "100", "-y", "30",
                       "-c", ROOT, command)
        assert started.returncode == 0, started.stderr
        tmux("set-option", "-t", "live", "remain-on-exit", "on")

        def time_shown():
            m = re.search(r"Clock +(\w\w\w \d{4}-\d\d-\d\d \d\d:\d\d:\d\d)", tmux.screen())
            return m and m.group(1)

        first = wait_until(time_shown, 10, "the dashboard shows the pump's time")
        # the very first status may predate the bench program (sent while it was set up)
        wait_until(lambda: "Program         baclofen" in tmux.screen(), 10, "the dashboard shows the program")
        screen = tmux.screen()
        assert re.search(r"Simulated Pico sim-1-[0-9a-f]{6} on /dev/pts/\d+", screen)
        assert "Program         baclofen  500 µg/mL  200 µg/day" in screen
        assert "Rate            0.4 mL/day" in screen
        assert "clock set to 2024-01-01 00:00 (it was not set)" in screen  # the clock set on first boot
        assert "\x1b" not in screen
        later = wait_until(lambda: (time_shown() or first) != first and time_shown(), 10,
                           "the numbers move")
        assert later != first
        assert len(firmware_processes(marker)) == 1

        tmux("send-keys", "-t", "live", "C-c")
        wait_until(lambda: done.exists() and done.read_text().strip(), 10, "the console exits")
        assert done.read_text().strip() == "0"
        assert firmware_processes(marker) == []
        # the alternate screen is gone, the summary is on the normal one, and the
        # terminal is back in cooked mode with echo
        after = tmux.screen(history=True)
        assert "Run ended: stopped by the user" in after
        assert "Last events" not in after
        modes = (tmp_path / "done.stty").read_text().split()
        assert "icanon" in modes and "echo" in modes and "isig" in modes
    finally:
        tmux.kill()
        for pid in firmware_processes(marker):
            os.kill(pid, signal.SIGKILL)
