# tools/plot.py: a pump's log (and status frames) drawn as a PNG. The log here is made up
# record by record, so that every kind of event in docs/protocol.md is in it, with a
# restart, a stop, boluses, a titration and a refill; the figures are checked where the
# plot computes them (programmed and delivered drug, alarm spans, the joined time axis).
import json
import os
import struct
import subprocess
import sys

import pytest

from tools import plot

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAY = 86400000
HOUR = 3600000
MIN = 60000
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def rec(t_ms, ev, **fields):
    body = {"t": "log", "ev": ev, "up_day": t_ms // DAY, "up_ms": t_ms % DAY}
    body.update(fields)
    return body


def status(t_ms, state="running", delivered_ng=0, reservoir_nl=20000000, rate=200000, **more):
    body = {"t": "status", "up_day": t_ms // DAY, "up_ms": t_ms % DAY, "state": state,
            "stop_reason": more.pop("stop_reason", None), "rate_ng_per_day": rate if state == "running" else 0,
            "delivered_ng": delivered_ng, "reservoir_nl": reservoir_nl, "pressure_mbar": 20,
            "pressure_excess_mbar": 2, "strokes_confirmed": delivered_ng // 125,
            "alarms": more.pop("alarms", [])}
    body.update(more)
    return body


PROGRAM = {"drug": "baclofen", "conc_ug_per_ml": 500, "keep_open_nl_per_day": 6000,
           "pump_dead_volume_nl": 0, "catheter_dead_volume_nl": 0, "priming_nl_per_hour": 600000,
           # a flex week: 100 ug/day at night, 300 ug/day from 08:00 to 20:00
           "profiles": {"day": [[0, 100000], [480, 300000], [1200, 100000]]},
           "week": ["day"] * 7}


def every_kind_log():
    # Two runs of the pump: the second starts after a watchdog reset, its clock at 0 again.
    run1 = [
        rec(0, "power_up", boots=1, restored=False, watchdog_reset=False, clock="not_set"),
        rec(0, "alarm", code="clock_not_set", state="raised", priority="low", restored=False),
        rec(0, "limits", max_rate_ng_per_day=500000, max_24h_ng=600000, max_bolus_ng=100000),
        rec(0, "clock", day=8766, ms=0, was_valid=False, moved_ms=0),  # 2024-01-01, a Monday
        rec(0, "alarm", code="clock_not_set", state="cleared"),
        rec(0, "alarm_settings", low_reservoir_nl=2000000, low_days=7, empty_floor_nl=100000),
        rec(0, "fill", volume_nl=20000000, conc_ug_per_ml=500),
        rec(0, "program", **PROGRAM),
        rec(0, "state", state="running", reason=None),
        rec(1 * HOUR, "bolus_start", kind="prime", volume_nl=50000, strokes=200, duration_ms=HOUR // 2),
        rec(1 * HOUR + HOUR // 2, "bolus_end", kind="prime", strokes_total=200, strokes_commanded=200,
            strokes_confirmed=200, requested_ng=0, delivered_ng=0, duration_ms=HOUR // 2, end="done"),
        rec(10 * HOUR, "bolus_start", kind="clinician", requested_ng=50000, strokes=400, duration_min=60),
        rec(11 * HOUR, "bolus_end", kind="clinician", strokes_total=400, strokes_commanded=400,
            strokes_confirmed=400, requested_ng=50000, delivered_ng=50000, duration_ms=HOUR, end="done"),
        rec(12 * HOUR, "refused", what="bolus", limit="max_24h", reason="over the 24 h maximum",
            field=None, retry_in_ms=None),
        rec(13 * HOUR, "withheld", strokes=3, window_24h_ng=600000, max_24h_ng=600000),
        rec(13 * HOUR, "alarm", code="safety_limit", state="raised", priority="low"),
        rec(14 * HOUR, "titration", percent=20, daily_ng=None, in_min=0),
        rec(14 * HOUR, "program", **dict(PROGRAM, profiles={"day": [[0, 120000], [480, 360000], [1200, 120000]]})),
        rec(20 * HOUR, "alarm", code="occlusion", state="raised", priority="high", excess_mbar=420,
            baseline_mbar=18),
        rec(20 * HOUR, "state", state="stopped", reason="occlusion"),
        rec(20 * HOUR + 5 * MIN, "silence", minutes=15),
        rec(20 * HOUR + 10 * MIN, "silence_end"),
        rec(22 * HOUR, "alarm", code="occlusion", state="cleared", excess_mbar=9),
        rec(22 * HOUR, "state", state="running", reason=None),
        rec(22 * HOUR, "resumed", stopped_ms=2 * HOUR, missed_ng=10000, missed_nl=20000),
        rec(23 * HOUR, "ack", cleared=["safety_limit"]),
        rec(23 * HOUR, "alarm", code="safety_limit", state="cleared"),
        rec(26 * HOUR, "pause", keep_open_nl_per_day=6000),
        rec(28 * HOUR, "resume"),
        rec(30 * HOUR, "strokes_unconfirmed", strokes=1, retry=True),
        rec(31 * HOUR, "fill", volume_nl=18000000, conc_ug_per_ml=500),
        rec(31 * HOUR, "refill", expected_nl=19000000, withdrawn_nl=17000000, difference_nl=-2000000,
            tolerance_nl=1900000, mismatch=True),
        rec(31 * HOUR, "alarm", code="refill_residual", state="raised", priority="medium",
            expected_nl=19000000, withdrawn_nl=17000000),
        rec(32 * HOUR, "auth_failed", cmd="bolus", role="patient", ctr=4, reason="bad_mac"),
        rec(33 * HOUR, "auth_lockout", failures=5, locked_ms=60000),  # a kind this tool does not know
        rec(34 * HOUR, "alarm", code="reservoir_low", state="raised", priority="medium",
            reservoir_nl=1900000, low_nl=2000000),
    ]
    run2 = [
        rec(0, "alarms_restored", alarms=[["refill_residual", "medium", False, False],
                                          ["reservoir_low", "medium", False, True]]),
        rec(0, "power_up", boots=2, restored=True, watchdog_reset=True, clock="restored"),
        rec(0, "state_corrupt", reason="bad CRC"),
        rec(0, "alarm", code="watchdog_reset", state="raised", priority="medium"),
        rec(0, "state", state="running", reason=None),
        rec(6 * HOUR, "bolus_start", kind="patient", requested_ng=20000, strokes=160, duration_min=30),
    ]
    return run1 + run2


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(33)
    assert head[:8] == PNG_MAGIC
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_every_kind_of_record_gives_a_png_of_the_asked_size(tmp_path):
    out = tmp_path / "log.png"
    assert plot.render_png(every_kind_log(), str(out)) == str(out)
    assert out.stat().st_size > 10000
    assert png_size(out) == (plot.WIDTH_PX, plot.HEIGHT_PX)
    small = tmp_path / "small.png"
    plot.render_png(every_kind_log(), str(small), width_px=800, height_px=900)
    assert png_size(small) == (800, 900)


def test_the_model_reads_every_kind_of_record():
    m = plot.Model(plot.timeline(every_kind_log()))
    end = m.t_end
    # the second run is joined to the end of the first (its last record, at 34 h)
    assert m.restarts == [34 * HOUR]
    assert end == 40 * HOUR
    # alarm spans: raised to cleared, restored ones open after the restart
    assert m.alarm_spans["occlusion"] == [(20 * HOUR, 22 * HOUR, "high", False)]
    assert m.alarm_spans["safety_limit"] == [(13 * HOUR, 23 * HOUR, "low", False)]
    assert m.alarm_spans["clock_not_set"] == [(0, 0, "low", False)]
    assert (31 * HOUR, end, "medium", True) in m.alarm_spans["refill_residual"]
    assert m.alarm_spans["watchdog_reset"] == [(34 * HOUR, end, "medium", True)]
    assert m.stops == [plot.Span(20 * HOUR, 22 * HOUR, "occlusion")]
    assert m.silences == [plot.Span(20 * HOUR + 5 * MIN, 20 * HOUR + 10 * MIN, "silenced")]
    assert m.occlusions == [(20 * HOUR, 438)]
    assert m.low_nl == 2000000 and m.floor_nl == 100000
    assert [f[:2] for f in m.fills] == [(0, 20000000), (31 * HOUR, 18000000)]
    marked = {ev for _, ev, _ in m.marks}
    assert {"refused", "withheld", "strokes_unconfirmed", "refill", "auth_failed", "ack", "state_corrupt",
            "auth_lockout", "pause", "resume", "limits", "clock", "alarm_settings"} <= marked
    # the flex week on the wall clock: 100 ug/day to 08:00, 300 to 20:00, then the
    # titration (+20 %) at 14:00; the pause runs the keep-open rate (6 uL/day = 3 ug/day)
    assert plot.rate_at(m.programmed, 7 * HOUR) == 100000
    assert plot.rate_at(m.programmed, 9 * HOUR) == 300000
    assert plot.rate_at(m.programmed, 15 * HOUR) == 360000
    assert plot.rate_at(m.programmed, 21 * HOUR) == 120000
    assert plot.rate_at(m.programmed, 27 * HOUR) == 3000
    assert plot.rate_at(m.programmed, 29 * HOUR) == 120000
    # delivered, from the log alone: nothing while stopped, the bolus on top, priming
    # fluid counts no drug
    delivered = m.delivered_rebuilt()
    assert plot.rate_at(delivered, 21 * HOUR) == 0
    assert plot.rate_at(delivered, 10 * HOUR + HOUR // 2) == 300000 + 50000 * 24
    assert plot.rate_at(delivered, 1 * HOUR + 10 * MIN) == 100000
    # the patient bolus still running at the end counts as asked for, so far
    t0, t1, start, end_body = m.boluses[-1]
    assert (t0, t1, start["kind"], end_body) == (40 * HOUR, 40 * HOUR, "patient", None)


def test_programmed_and_delivered_totals():
    # One day at 200 ug/day with a 6 h stop: 200 ug programmed, 150 ug delivered.
    log = [rec(0, "power_up", boots=1), rec(0, "fill", volume_nl=20000000, conc_ug_per_ml=500),
           rec(0, "program", **dict(PROGRAM, profiles={"all": [[0, 200000]]}, week=["all"] * 7)),
           rec(0, "state", state="running", reason=None),
           rec(6 * HOUR, "state", state="stopped", reason="motor_stall"),
           rec(12 * HOUR, "state", state="running", reason=None),
           rec(DAY, "alarm", code="battery_low", state="raised", priority="medium", mv=3490)]
    m = plot.Model(plot.timeline(log))
    _, programmed = plot.cumulative(m.programmed)
    _, delivered = plot.cumulative(m.delivered_rebuilt())
    assert programmed[-1] == pytest.approx(200000)
    assert delivered[-1] == pytest.approx(150000)


def test_status_frames_give_delivered_reservoir_and_pressure(tmp_path):
    log = [rec(0, "power_up", boots=1), rec(0, "fill", volume_nl=20000000, conc_ug_per_ml=500),
           rec(0, "program", **dict(PROGRAM, profiles={"all": [[0, 200000]]}, week=["all"] * 7)),
           rec(0, "state", state="running", reason=None)]
    frames = [status(k * HOUR, delivered_ng=k * 8375, reservoir_nl=20000000 - k * 16750) for k in range(49)]
    frames[30] = status(30 * HOUR, "stopped", 30 * 8375, stop_reason="occlusion",
                        alarms=[["occlusion", "high", False, True]])
    m = plot.Model(plot.timeline(log, frames))
    steps, times, total = m.delivered_from_status()
    assert times[-1] == 48 * HOUR and total[-1] == 48 * 8375
    assert steps and all(s.t1 > s.t0 for s in steps)
    assert m.alarm_spans["occlusion"] == [(30 * HOUR, 31 * HOUR, "high", False)]
    out = tmp_path / "with-status.png"
    plot.render_png(log, str(out), status=frames)
    assert png_size(out) == (plot.WIDTH_PX, plot.HEIGHT_PX)


def test_status_frames_are_matched_to_the_last_run():
    # Frames from the session after a restart sit after the first run, not on top of it.
    log = [rec(0, "power_up", boots=1), rec(5 * HOUR, "state", state="running", reason=None),
           rec(0, "power_up", boots=2)]
    frames = [status(HOUR), status(2 * HOUR)]
    tl = plot.timeline(log, frames)
    assert tl.restarts == [5 * HOUR]
    assert [t for t, b in tl.items if b["t"] == "status"] == [6 * HOUR, 7 * HOUR]


def test_an_empty_log_is_a_clear_error(tmp_path):
    with pytest.raises(plot.PlotError, match="no records"):
        plot.render_png([], str(tmp_path / "x.png"))
    with pytest.raises(plot.PlotError):
        plot.render_png([{"t": "result", "ok": True}], str(tmp_path / "x.png"))
    assert not (tmp_path / "x.png").exists()


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "tools.plot"] + list(args), cwd=ROOT,
                          capture_output=True, text=True, timeout=60)


def test_command_line_reads_json_lines_and_framed_logs(tmp_path):
    log = tmp_path / "log.jsonl"
    lines = [json.dumps(r) for r in every_kind_log()]
    lines.insert(3, "")  # blank lines are fine
    lines.append(json.dumps({"t": "result", "cmd": "log", "ok": True, "code": "ok", "re": 3}))
    log.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out.png"
    proc = run_cli(str(log), "-o", str(out), "--size", "900x1000")
    assert proc.returncode == 0, proc.stderr
    assert png_size(out) == (900, 1000)

    # the pump's own framed log file (its flash `log`), read with the firmware's reader
    sys.path.append(os.path.join(ROOT, "firmware"))
    from pump import wire
    framed = tmp_path / "flash-log"
    framed.write_bytes(b"".join(wire.encode(i, dict(r, t="event")) for i, r in enumerate(every_kind_log()))
                       + b"~1 99 {torn\n")
    records, statuses = plot.read_jsonl(str(framed))
    assert len(records) == len(every_kind_log()) and statuses == []

    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    proc = run_cli(str(empty), "-o", str(tmp_path / "e.png"))
    assert proc.returncode == 2
    assert "no log records" in proc.stderr and "Traceback" not in proc.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"t": "log", "ev": "power_up"}\nnot json\n')
    proc = run_cli(str(bad))
    assert proc.returncode == 2 and "bad.jsonl:2: not JSON" in proc.stderr
