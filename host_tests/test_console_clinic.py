# What a clinician meets at the console: clinical units and the wall clock, messages for
# every port that will not do, exit statuses as documented, the second confirmation of a
# large dose change, and the pieces of the visit report. No pump here but the pump's own
# core where a figure must be the pump's; test_console_session.py runs the real thing.
import io
import json
import os
import subprocess
import sys

import pytest

from tools import clinical, commands, console, dashboard, logformat
from tools.simpico import SimPico, check_bench_set_up, parse_fill_ml

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONSOLE = [sys.executable, "-m", "tools.console"]
DAY = 86400000
HOUR = 3600000


def cli(*args, timeout=60, stdin=None):
    return subprocess.run(CONSOLE + list(args), cwd=ROOT, input=stdin, capture_output=True, text=True,
                          timeout=timeout)


# ---- units and sentences -----------------------------------------------------------------------

def test_events_read_in_micrograms_millilitres_and_hours():
    text = clinical.event_text
    assert text({"ev": "resumed", "stopped_ms": 4314000, "missed_ng": 264500, "missed_nl": 132250}) == \
        "delivery resumed after 1:11 h stopped: missed 264.5 µg (0.13225 mL), not made up"
    assert text({"ev": "clock", "day": 8766, "ms": 0, "was_valid": False, "moved_ms": 0}) == \
        "clock set to 2024-01-01 00:00 (it was not set)"
    assert text({"ev": "clock", "day": 8766, "ms": 5400000, "was_valid": True, "moved_ms": -5400000}) == \
        "clock set to 2024-01-01 01:30 (moved 1:30 h back)"
    assert text({"ev": "refused", "what": "fill", "reason": "a bridge is still running: 149500 nL of older drug in "
                  "the line", "limit": None}) == \
        "refused fill: a bridge is still running: 0.1495 mL of older drug in the line"
    assert text({"ev": "fill", "volume_nl": 18500000, "conc_ug_per_ml": 2000, "bridge_nl": 170000}) == \
        "filled 18.5 mL of 2000 µg/mL; 0.17 mL of the old drug in the line, given at its own strength (bridge)"
    assert text({"ev": "alarm", "code": "occlusion", "state": "raised", "priority": "high", "excess_mbar": 420,
                 "baseline_mbar": 18}) == "ALARM occlusion (high priority): 420 mbar over the baseline of 18 mbar"
    assert text({"ev": "pause", "keep_open_nl_per_day": 6000}) == \
        "paused by the clinician: keep-open rate 6 µL/day"
    # a kind the console does not know: its fields in units still
    assert text({"ev": "new_kind", "dose_ng": 1500, "wait_ms": 90000}) == "new_kind: dose 1.5 µg, wait 0:01 h"


def test_refusal_reasons_lose_their_nanolitres():
    r = clinical.reason_text
    assert r("volume_nl=500000000: outside the allowed range 1..40000000 nL") == \
        "volume 500 mL: outside the allowed range 0.000001 mL..40 mL"
    assert r("dose_ng=60000: outside 1..200000 ng") == "dose 60 µg: outside 0.001 µg..200 µg"
    assert r("60 ug is above the maximum bolus of 50 ug") == "60 µg is above the maximum bolus of 50 µg"
    assert r("lockout: 3 min since the last, 180 min required") == "lockout: 3 min since the last, 180 min required"


def test_durations_and_dates():
    assert [clinical.hmm(ms) for ms in (45000, 60000, 4314000, 49 * HOUR + 5 * 60000)] == \
        ["45 s", "0:01 h", "1:11 h", "2 d 1:05 h"]
    assert clinical.wall_text(8766 * DAY + 13 * HOUR + 5 * 60000, weekday=True) == "Mon 2024-01-01 13:05"


def _r(t, ev, **k):
    return dict(t="log", ev=ev, up_day=t // DAY, up_ms=t % DAY, **k)


def test_a_restarts_restored_alarms_belong_to_its_boot_and_every_record_gets_a_wall_clock():
    # as firmware before the power_up record led its boot wrote it: alarms_restored last
    # in the previous boot, at time 0
    log = [_r(0, "power_up", boots=1, clock="not_set"),
           _r(5, "clock", day=8766, ms=0, was_valid=False, moved_ms=None),
           _r(HOUR, "alarm", code="battery_low", state="raised", priority="medium"),
           _r(0, "alarms_restored", alarms=[["battery_low", "medium", False, True]]),
           _r(0, "power_up", boots=2, clock="restored", wall=[8766, 1800000]),
           _r(60000, "state", state="running", reason=None)]
    rows = logformat.read_csv(logformat.render(log, "csv"))
    assert [(r["ev"], r["boot"]) for r in rows] == [
        ("power_up", "1"), ("clock", "1"), ("alarm", "1"), ("alarms_restored", "2"), ("power_up", "2"),
        ("state", "2")]
    assert [r["wall_clock"] for r in rows] == ["", "2024-01-01T00:00:00", "2024-01-01T00:59:59",
                                               "2024-01-01T00:30:00", "2024-01-01T00:30:00", "2024-01-01T00:31:00"]
    jsonl = [json.loads(line) for line in logformat.render(log, "jsonl").splitlines()]
    assert jsonl[5]["wall_clock"] == "2024-01-01T00:31:00" and jsonl[5]["up_ms"] == 60000  # the integers stay
    # a log without power_up's wall (older firmware): the status now anchors the last boot
    old = [dict(b) for b in log]
    del old[4]["wall"]
    status = {"t": "status", "up_day": 0, "up_ms": 120000, "clock": [8766, 7200000]}
    rows = logformat.read_csv(logformat.render(old, "csv", status))
    assert rows[5]["wall_clock"] == "2024-01-01T01:59:00"


def status(**more):
    body = {"t": "status", "up_day": 0, "up_ms": 2 * HOUR, "clock": [8766, 9 * HOUR], "clock_restored": False,
            "state": "running", "stop_reason": None, "paused": False, "drug": "baclofen", "conc_ug_per_ml": 500,
            "dose_ug_per_day": 200, "rate_ng_per_day": 200000, "rate_nl_per_day": 400000,
            "strokes_programmed": 133, "strokes_confirmed": 133, "strokes_unconfirmed": 0, "delivered_nl": 33250,
            "delivered_ng": 16625, "reservoir_nl": 19966750, "reservoir_ng": 9983375, "days_to_low": 44,
            "days_to_empty": 49, "alarms": [], "silenced": False, "bolus": None, "bridge_nl": 0,
            "titration_in_ms": None}
    body.update(more)
    return body


def test_the_dashboard_shows_the_wall_clock_a_pause_a_bridge_and_one_figure_for_days_left():
    rows = dict(dashboard.status_fields(status()))
    assert rows["Clock"] == "Mon 2024-01-01 09:00:00  (pump up 2:00 h)"
    assert rows["Refill"] == "low level in 44 days (2024-02-14), empty in 49 days (2024-02-19), worst case"
    assert "days left at this rate" not in rows["Reservoir"]  # one figure: the pump's worst case
    paused = dict(dashboard.status_fields(status(paused=True, rate_ng_per_day=3000, rate_nl_per_day=6000)))
    assert paused["Pump"] == "PAUSED by the clinician: the keep-open rate runs (console resume)"
    assert paused["Program"] == "baclofen  500 µg/mL  paused: keep-open 3 µg/day"
    bridge = {"kind": "bridge", "strokes_total": 0, "strokes_commanded": 0, "strokes_confirmed": 0,
              "requested_ng": 0, "delivered_ng": 0, "duration_ms": 0}
    rows = dict(dashboard.status_fields(status(bolus=bridge, bridge_nl=149500)))
    assert rows["Bolus"] == ("bridge: 0.1495 mL of the old drug still in the line, given at its own strength; "
                             "about 8:58 h more at this rate")
    assert "0 of 0 strokes" not in commands.bolus_text(bridge, status(bridge_nl=149500))
    rows = dict(dashboard.status_fields(status(titration_in_ms=45 * 60000)))
    assert rows["Titration"] == "due in 0:45 h (at 2024-01-01 09:45)"
    unset = dict(dashboard.status_fields(status(clock=None)))
    assert unset["Clock"].startswith("not set (a flex schedule needs it: console clock set now)")


def test_the_programmed_estimate_is_not_thrown_by_a_restart():
    # After a restart the pump's delivered count jumps by its lease and its programmed
    # strokes start again: the chart's programmed figure is the rate, not a stroke count.
    h = dashboard.DoseHistory()
    h.add(status(up_ms=HOUR, delivered_ng=10000, delivered_nl=20000, strokes_programmed=80,
                 strokes_confirmed=80))
    h.add(status(up_ms=2 * HOUR, delivered_ng=18333, delivered_nl=36666, strokes_programmed=146,
                 strokes_confirmed=146))
    h.add(status(up_ms=0, delivered_ng=68333, delivered_nl=136666, strokes_programmed=0, strokes_confirmed=146))
    h.add(status(up_ms=HOUR, delivered_ng=76666, delivered_nl=153333, strokes_programmed=66,
                 strokes_confirmed=212))
    assert [p // dt for _, dt, _, p in h.intervals] == [200000, 200000]


# ---- the second confirmation of a large change --------------------------------------------------

def prog(*steps, drug="baclofen"):
    return {"drug": drug, "conc_ug_per_ml": 500, "profiles": {"all": [list(s) for s in steps]}, "week": ["all"] * 7}


def test_large_changes_of_the_daily_dose_are_named():
    reasons, dose = commands.dose_change_findings(prog((0, 50000)), prog((0, 260000)))
    assert reasons == ["the daily dose changes from 50 to 260 µg/day (x5.2, +420 %), more than 20 %"]
    assert dose == 260000
    assert commands.dose_change_findings(prog((0, 200000)), prog((0, 210000)))[0] == []
    assert "(x0.79, -20 %)" in commands.dose_change_findings(prog((0, 200000)), prog((0, 159000)))[0][0]
    reasons, dose = commands.dose_change_findings(prog((0, 1000000)), prog((0, 1100000)))
    assert reasons == ["1100 µg/day is outside the usual range of intrathecal baclofen, 20-1000 µg/day"]
    assert commands.dose_change_findings(None, prog((0, 10000), drug="morphine"))[0] == []


def _confirm(answer, given=None, yes=False):
    class O:
        json = False
        confirm_daily_dose = given
    O.yes = yes
    err = io.StringIO()
    ui = commands.Ui(O(), stdin=io.StringIO(answer), stdout=io.StringIO(), stderr=err)
    try:
        commands.confirm_dose_change(ui, O(), prog((0, 50000)), prog((0, 260000)))
    except (commands.Cancelled, commands.UserError) as e:
        return e, ui.stdout.getvalue(), err.getvalue()
    return None, ui.stdout.getvalue(), err.getvalue()


def test_a_large_change_asks_for_the_new_dose_typed_again():
    e, out, err = _confirm("260\n")
    assert e is None and "CAUTION: the daily dose changes from 50 to 260 µg/day" in out
    assert "Type the new daily dose in µg/day to confirm this change: " in err
    e, _, err = _confirm("26\n")
    assert isinstance(e, commands.Cancelled) and "26 µg/day is not the new daily dose (260 µg/day)." in err
    e, _, _ = _confirm("", yes=True)
    assert isinstance(e, commands.UserError) and "--confirm-daily-dose 260" in str(e)
    assert _confirm("", given="260", yes=True)[0] is None


def test_titrate_at_a_time_on_the_pumps_clock():
    clock = [8766, 9 * HOUR + 30000]  # 09:00:30
    assert commands.minutes_until(commands.parse_at("2024-01-01T10:00"), clock) == 60  # rounded up
    assert commands.minutes_until(commands.parse_at("08:00"), clock) == 23 * 60 - 0  # tomorrow's
    with pytest.raises(commands.UserError, match="is past on the pump's clock"):
        commands.minutes_until(commands.parse_at("2023-12-31T10:00"), clock)
    with pytest.raises(commands.UserError, match="more than 6 days ahead"):
        commands.minutes_until(commands.parse_at("2024-01-09T10:00"), clock)
    with pytest.raises(commands.UserError, match="not set"):
        commands.minutes_until(commands.parse_at("10:00"), None)
    with pytest.raises(commands.UserError, match="YYYY-MM-DDTHH:MM or HH:MM"):
        commands.parse_at("soon")


# ---- the simulated Pico's set-up, checked on the host ---------------------------------------------

def test_fill_is_fractional_and_the_bench_program_is_checked_before_anything_starts():
    assert parse_fill_ml("18.5") == 18500000 and parse_fill_ml(20) == 20000000
    with pytest.raises(ValueError, match="at most 6 decimals"):
        parse_fill_ml("1.0000001")
    with pytest.raises(ValueError, match="the simulated Pico's reservoir holds at most 40 mL"):
        check_bench_set_up("baclofen:500:200", 500000000)
    with pytest.raises(ValueError, match=r"dose 99999 µg/day: outside the allowed range 1\.\.3000 µg/day"):
        check_bench_set_up("baclofen:500:99999", 20000000)
    proc = cli("status", "--sim", "--program", "baclofen:500:99999")
    assert proc.returncode == 2 and "usage: python -m tools.console status" in proc.stderr
    assert "the pump would refuse it: dose 99999 µg/day" in proc.stderr and "Traceback" not in proc.stderr


def test_every_simulated_pump_has_its_own_id(tmp_path):
    a, b = SimPico(seed=1), SimPico(seed=1)
    assert a.dev != b.dev and a.dev.startswith("sim-1-") and b.dev.startswith("sim-1-")
    # a kept flash keeps its id
    kept = SimPico(seed=1, flash=str(tmp_path / "f"))
    kept.open()
    try:
        assert SimPico(seed=1, flash=str(tmp_path / "f")).dev == kept.dev
    finally:
        kept.stop()


# ---- the command line: help, usage, messages, exits ----------------------------------------------

def test_subcommand_errors_show_the_subcommands_usage_and_plot_has_help():
    proc = cli("silence", "--port", "p", "--minutes", "16")
    assert proc.returncode == 2
    assert proc.stderr.startswith("usage: python -m tools.console silence") and "--minutes is 1..15" in proc.stderr
    proc = cli("bolus", "--port", "p", "--speed", "0", "--dose-ug", "1", "--minutes", "30")
    assert proc.returncode == 2 and "--speed sets up a simulated Pico: give it with --sim, not --port" in proc.stderr
    proc = cli("plot", "--help")
    assert proc.returncode == 0 and "the PNG to write (mode 0600" in proc.stdout
    proc = cli("report", "--help")
    assert proc.returncode == 0 and "visit.html, or visit.pdf" in proc.stdout


@pytest.mark.parametrize("path,words", [
    ("/dev/null", "/dev/null is not a serial port"),
    ("/dev/no-such-pump", "there is no serial port /dev/no-such-pump: is the pump plugged in"),
    ("/etc/hostname", "/etc/hostname is not a serial port"),
    ("/tmp", "/tmp is a directory, not a serial port"),
])
def test_ports_that_will_not_do_say_why(path, words):
    proc = cli("status", "--port", path)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.startswith("console: " + words) and len(proc.stderr.strip().splitlines()) == 1
    assert "Traceback" not in proc.stderr and "ioctl" not in proc.stderr


def test_a_silent_port_asks_whether_the_firmware_runs():
    master, slave = os.openpty()
    try:
        port = os.ttyname(slave)
        proc = cli("status", "--port", port, "--timeout", "0.5")
        assert proc.returncode == 2
        assert ("console: nothing came from %s within 0 s: is the pump's firmware running? A Pico in service mode "
                "or at its REPL does not answer" % port) in proc.stderr
        proc = cli("watch", "--port", port, "--plain", "--timeout", "1", timeout=30)
        assert proc.returncode == 2
        assert "console: Nothing has come from %s for 1 s: is the pump's firmware running?" % port in proc.stderr
        assert "Run ended: no answer from the pump" in proc.stdout
        proc = cli("ack", "--port", port, "--timeout", "0.5", "--json")
        assert proc.returncode == 2 and json.loads(proc.stdout)["ok"] is False
    finally:
        os.close(master)
        os.close(slave)


def test_a_missing_key_in_the_store_is_exit_2(tmp_path):
    # the pump never sees the command: a problem with the key store (docs/console.md)
    from tools.link import NotProvisioned
    e = NotProvisioned("the key store holds no keys for pump sim-1-abcdef")
    ui = commands.Ui(type("O", (), {"json": False, "yes": False})(), stdout=io.StringIO(), stderr=io.StringIO())
    assert commands.report_error(e, ui, "ack") == commands.EXIT_USAGE


def test_make_sim_json_is_nothing_but_json_lines():
    import shutil
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    # as a user runs it: not as a sub-make of `make test` (which would announce its directory)
    env = {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS", "MAKEOVERRIDES")}
    proc = subprocess.run(["make", "-o", ".venv/.installed", "sim", "ARGS=--json --days 1 --speed 0"],
                          cwd=ROOT, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    bodies = [json.loads(line) for line in proc.stdout.splitlines()]  # make's echo would not parse
    assert bodies[-1]["t"] == "summary"


def test_console_main_turns_ctrl_c_at_a_prompt_into_cancelled(monkeypatch, capsys):
    # Ctrl-C while the refill asks for a volume: nothing was sent, exit 4
    class Link:
        port = "/dev/fake"
        dev = "sim-1-abcdef"
        sent_cmd = None
        answered = False

        def status(self, timeout_s=3.0):
            return {"reservoir_nl": 1000000, "conc_ug_per_ml": 500, "drug": "baclofen"}

        def close(self):
            pass

    class Source:
        def __init__(self, opts, serve=False):
            self.link = Link()
            self.sim = None

        def close(self):
            pass

    def interrupted(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(console, "Source", Source)
    monkeypatch.setattr(console, "raise_on_termination", lambda: None)
    monkeypatch.setattr(commands.Ui, "ask", interrupted)
    assert console.main(["refill", "--port", "/dev/fake"]) == commands.EXIT_CANCELLED
    assert "Cancelled: nothing was sent." in capsys.readouterr().err
    Link.sent_cmd = "refill"  # sent, no answer yet: the pump may have done it
    monkeypatch.setattr(commands, "cmd_refill", interrupted)
    monkeypatch.setitem(console._HANDLERS, "refill", interrupted)
    assert console.main(["refill", "--port", "/dev/fake"]) == console.EXIT_INTERRUPTED
    assert "`refill` was sent and no answer came yet: the pump may have carried it out" in capsys.readouterr().err


# ---- the dashboard sample in docs/console.md is what the dashboard shows ----------------------

def docs_sample():
    # the simulated Pico 1 h 45 min after its first boot, as `make sim` shows it on 100x32
    from tools.dashboard import Dashboard, LinkHealth
    dash = Dashboard("Simulated Pico sim-1-3f9a2c on /dev/pts/3  (3600x, seed 1, status every 15 min)", ascii=False)
    events = [_r(0, "power_up", boots=1, restored=False, watchdog_reset=False, clock="not_set", wall=None),
              _r(0, "alarm", code="clock_not_set", state="raised", priority="low", restored=False),
              _r(0, "clock", day=8766, ms=0, was_valid=False, moved_ms=None),
              _r(0, "alarm", code="clock_not_set", state="cleared"),
              _r(0, "fill", volume_nl=20000000, conc_ug_per_ml=500),
              _r(0, "program", drug="baclofen", conc_ug_per_ml=500, profiles={"all": [[0, 200000]]},
                 week=["all"] * 7),
              _r(0, "state", state="running", reason=None)]
    for e in events:
        dash.feed(dict(e, t="event"))
    for k in range(8):
        n = k * 100 // 6  # 16.7 strokes every 15 min at 200 µg/day, 125 ng a stroke
        dash.feed(status(up_ms=k * 900000, clock=[8766, k * 900000], strokes_programmed=n, strokes_confirmed=n,
                         delivered_nl=n * 250, delivered_ng=n * 125, reservoir_nl=20000000 - n * 250,
                         reservoir_ng=(20000000 - n * 250) // 2, days_to_low=45, days_to_empty=49,
                         pressure_mbar=21, pressure_excess_mbar=3, battery_mv=4803))
    return dash.lines(LinkHealth(12, 0, 0, 0, 0, 0.0), 100, 40)


def test_the_dashboard_sample_in_the_docs_is_what_it_shows():
    with open(os.path.join(ROOT, "docs", "console.md"), encoding="utf-8") as f:
        doc = f.read()
    block = doc.split("## The dashboard (`watch` on a terminal)", 1)[1].split("```", 2)[1].strip("\n")
    assert block.splitlines() == [line.rstrip() for line in docs_sample()]


def test_a_refusal_reads_in_clinical_units():
    from tools.link import explain
    e = explain({"cmd": "fill", "code": "refused", "reason": "a bridge is still running: 149500 nL of older drug "
                 "in the line", "field": "conc_ug_per_ml"})
    out, err = io.StringIO(), io.StringIO()
    ui = commands.Ui(type("O", (), {"json": True, "yes": False})(), stdout=out, stderr=err)
    assert commands.report_error(e, ui, "fill") == commands.EXIT_REFUSED
    assert "a bridge is still running: 0.1495 mL of older drug in the line" in err.getvalue()
    assert json.loads(out.getvalue())["reason"].startswith("a bridge is still running: 149500 nL")  # exact


def test_the_refill_compares_with_the_pumps_count_when_it_is_sent():
    # the pump pumps on while the residual is withdrawn: the console reads its count again
    class Pump:
        dev = "sim-1-abcdef"
        port = "/dev/fake"
        counts = iter([2000000, 1990000, 1980000])

        def status(self, timeout_s=3.0):
            return {"reservoir_nl": next(self.counts), "conc_ug_per_ml": 500, "drug": "baclofen"}

        def command(self, cmd, args=None, role="clinician", timeout_s=3.0):
            raise commands.Cancelled()

    opts = console.parser().parse_args(["refill", "--port", "p", "--withdrawn-ml", "1.9", "--volume-ml", "20",
                                        "--conc", "500", "--conc-again", "500", "--yes"])
    out = io.StringIO()
    ui = commands.Ui(opts, stdin=io.StringIO(""), stdout=out, stderr=io.StringIO())
    with pytest.raises(commands.Cancelled):
        commands.cmd_refill(opts, Pump(), ui)
    assert "The pump expects 2 mL left in the reservoir." in out.getvalue()
    assert "The pump has delivered 0.01 mL since: it now expects 1.99 mL." in out.getvalue()


def test_a_simulated_pico_takes_the_key_store_and_watch_on_its_port_ends_after_its_days(tmp_path):
    keys = str(tmp_path / "keys")
    sim = subprocess.Popen([sys.executable, "-m", "tools.simpico", "--keys", keys, "--flash", str(tmp_path / "f"),
                            "--speed", "86400", "--status-ms", "3600000"], cwd=ROOT, stdin=subprocess.DEVNULL,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = sim.stdout.readline().strip()
        proc = cli("watch", "--port", port, "--days", "1", "--json", timeout=60)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout.splitlines()[-1])
        assert summary["ending"] == "1 day of the pump's time went by"
        proc = cli("ack", "--port", port, "--keys", keys, "--json")
        assert proc.returncode == 0, proc.stderr  # signed with the keys simpico put in the store
    finally:
        sim.send_signal(2)
        _, err = sim.communicate(timeout=15)
    assert "simpico: the keys of pump sim-1-" in err
