# tools.accuracy: the IEC 60601-2-24 flow-accuracy figures (start-up curve, trumpet
# curve, overall mean error, and this pump's windows of hours) from a balance log, the
# pump's own log and the simulated Pico weighed by a modelled balance. Every number
# checked here is worked out by hand in the comment beside it.
import datetime
import json
import os
import subprocess
import sys
from fractions import Fraction

import pytest

from tools import accuracy
from tools.accuracy import AccuracyError, balance, curves, pumplog, report
from tools.accuracy.__main__ import main

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
H = 3600
RATE_NL_PER_DAY = Fraction(400000)  # 500 ug/mL at 200 ug/day: 0.4 mL/day
R = 400000 / 24000  # uL/h: 16.667
STROKE_UL = 0.25
PERIOD_S = 54  # 250 nL at 0.4 mL/day: 1600 strokes a day, one every 54 s


def volumes(fn, hours):
    # V(t) on the 0.5-min grid for a pump whose volume at t seconds is fn(t), uL
    return [fn(i * curves.SAMPLE_S) for i in range(hours * 120 + 1)]


# ---- the figures, for pumps whose every number is known -----------------------------------

def test_a_perfect_pump_has_no_error_anywhere():
    f = curves.figures(volumes(lambda t: R * t / H, 30), RATE_NL_PER_DAY / 24000)
    assert [q for _, q in f.startup] == pytest.approx([R] * 240)
    for w in f.trumpet + f.long:
        assert (w.ep_max_pct, w.ep_min_pct) == (pytest.approx(0, abs=1e-9), pytest.approx(0, abs=1e-9))
    assert f.mean_error_pct == pytest.approx(0, abs=1e-9)
    assert f.startup_delay_min == pytest.approx(0, abs=1e-9)
    assert [w.minutes for w in f.trumpet] == [2, 5, 11, 19, 31]
    # windows slide by 0.5 min over the second hour: (60 - P) / 0.5 + 1 of them
    assert [w.windows for w in f.trumpet] == [117, 111, 99, 83, 59]
    # 30 h: all three long windows fit in hours 1 to 30 (29 h)
    assert [w.minutes for w in f.long] == [60, 360, 1440] and f.long_missing_h == []
    assert [w.windows for w in f.long] == [(29 - h) * 120 + 1 for h in (1, 6, 24)]


def test_a_pump_5_percent_fast_is_5_percent_fast_in_every_window():
    f = curves.figures(volumes(lambda t: 1.05 * R * t / H, 8), RATE_NL_PER_DAY / 24000)
    for w in f.trumpet + f.long:
        assert w.ep_max_pct == pytest.approx(5.0) and w.ep_min_pct == pytest.approx(5.0)
    assert f.mean_error_pct == pytest.approx(5.0)
    assert f.long_missing_h == [24]  # 8 h: the 24 h window does not fit after hour 1


def test_a_start_up_delay_shows_in_the_curve_and_the_delay_not_in_the_second_hour():
    # nothing for 10 min, then the set rate
    f = curves.figures(volumes(lambda t: R * max(0, t - 600) / H, 2), RATE_NL_PER_DAY / 24000)
    flows = [q for _, q in f.startup]
    assert flows[:20] == [0.0] * 20 and flows[20:] == pytest.approx([R] * 220)
    assert f.startup_delay_min == pytest.approx(10.0)
    assert f.mean_error_pct == pytest.approx(0, abs=1e-9)
    assert f.long == [] and f.long_missing_h == []  # a 2 h record: the standard's part only


def test_a_record_shorter_than_two_hours_is_refused():
    with pytest.raises(AccuracyError, match="covers 119.5 min after the start.*need 2 h"):
        curves.figures(volumes(lambda t: R * t / H, 2)[:-1], 400000 / 24000)


def test_readings_are_interpolated_onto_the_half_minute_grid_and_gaps_refused():
    # a balance printing every 7 s, the infusion starting 21 s after its first reading
    times = [7.0 * k for k in range(2000)]
    vols = [max(0.0, t - 21) / 10.0 for t in times]  # 0.1 uL/s after the start
    g = curves.grid(times, vols, 21.0, 60)
    assert g[:4] == pytest.approx([0, 3.0, 6.0, 9.0])
    # a count holds its value between reports
    assert curves.grid([0, 10, 20, 30], [0, 1, 1, 2], 0, 30, hold=True) == [0, 2]
    with pytest.raises(AccuracyError, match="gap of 90 s between 60 s and 2.5 min after the start"):
        curves.grid([0, 30, 60, 150, 180], [0] * 5, 0, 60)
    with pytest.raises(AccuracyError, match="begins 5 s after the start"):
        curves.grid([5, 35], [0, 1], 0, 60)


# ---- the simulated Pico weighed: the same figures end to end --------------------------------

@pytest.fixture(scope="module")
def ideal_26h():
    return accuracy.from_sim(500, 200, 26 * H)


def strokes_in(window_s):
    # a window of a stroke pump holds floor or ceil of window / period strokes
    n = window_s // PERIOD_S
    return n, n + (1 if window_s % PERIOD_S else 0)


def test_the_simulated_pump_on_an_ideal_balance_shows_its_strokes(ideal_26h):
    f = ideal_26h.figures
    for w in f.trumpet + f.long:
        want = R * w.minutes / 60
        few, many = strokes_in(w.minutes * 60)
        # e.g. 2 min: 2 or 3 strokes of 0.25 uL against 0.5556 uL: -10 % and +35 %
        assert w.ep_max_pct == pytest.approx(100 * (many * STROKE_UL - want) / want, abs=1e-6), w
        assert w.ep_min_pct == pytest.approx(100 * (few * STROKE_UL - want) / want, abs=1e-6), w
        assert w.stroke_pct == pytest.approx(100 * STROKE_UL / want)
    assert [round(w.ep_max_pct, 2) for w in f.trumpet] == [35.0, 8.0, 6.36, 4.21, 1.61]
    # strokes land at 54 k s + 0.16 s: the second hour holds k = 67..133, 67 strokes
    assert f.mean_error_pct == pytest.approx(100 * (67 * STROKE_UL - R) / R)  # +0.50 %
    # the first hour holds 66: it trails the second hour's flow by 60 - 60 x 66/67 min
    assert f.startup_delay_min == pytest.approx(60 - 60 * 66 / 67)
    # each 0.5-min flow is 0 or one stroke (30 uL/h)
    assert sorted({round(q, 9) for _, q in f.startup}) == [0.0, 30.0]
    assert ideal_26h.stroke_nl == 250


def test_a_head_that_moves_more_than_its_calibration_shows_the_error():
    # the head moves 260 nL a stroke, the firmware counts 250: +4 % on every stroke
    f = accuracy.from_sim(500, 200, 2 * H, true_stroke_nl=260).figures
    assert f.mean_error_pct == pytest.approx(100 * (67 * 0.26 - R) / R)  # +4.52 %
    w2 = f.trumpet[0]
    assert (w2.ep_max_pct, w2.ep_min_pct) == (pytest.approx(100 * (3 * 0.26 - R / 30) / (R / 30)),
                                              pytest.approx(100 * (2 * 0.26 - R / 30) / (R / 30)))  # +40.4, -6.4


def test_an_unprimed_outlet_delays_the_start_and_nothing_else():
    # 5 uL fill the tubing: the first 20 strokes (by 20 x 54 s = 18 min) never arrive,
    # the 21st lands at 1134.16 s, inside the interval ending at 19.0 min
    r = accuracy.from_sim(500, 200, 2 * H, unprimed_nl=5000)
    f = r.figures
    flows = [q for _, q in f.startup]
    assert flows[:37] == [0.0] * 37 and flows[37] == pytest.approx(30.0)
    # hour 1 delivers 66 strokes less 5 uL; hour 2 its 67 strokes
    assert f.startup_delay_min == pytest.approx(60 - 60 * (66 * STROKE_UL - 5) / (67 * STROKE_UL))  # 18.81
    assert f.mean_error_pct == pytest.approx(100 * (67 * STROKE_UL - R) / R)
    assert "5 uL of outlet tubing unprimed" in r.source


def test_the_modelled_balance_adds_its_noise_and_the_seed_repeats_it(ideal_26h):
    model = balance.Model(resolution_mg=0.01, noise_mg=0.015, evaporation_mg_per_h=0.02, temp_c=22, seed=3)
    a = accuracy.from_sim(500, 200, 26 * H, seed=1, model=model).figures
    again = accuracy.from_sim(500, 200, 26 * H, seed=1, model=balance.Model(
        0.01, 0.015, 0.02, temp_c=22, seed=3)).figures
    other = accuracy.from_sim(500, 200, 26 * H, seed=1, model=balance.Model(
        0.01, 0.015, 0.02, temp_c=22, seed=4)).figures
    assert a == again and a != other
    ideal = ideal_26h.figures
    # the balance's error on one window is at most a few noise sds plus a digit on each
    # end: 0.1 mg of 0.55 mg in 2 min (18 %), 0.1 mg of 400 mg in 24 h
    for w, i in zip(a.trumpet + a.long, ideal.trumpet + ideal.long):
        limit = 100 * 0.1 / (R * w.minutes / 60)
        assert abs(w.ep_max_pct - i.ep_max_pct) < limit and abs(w.ep_min_pct - i.ep_min_pct) < limit, (w, i)
    assert abs(a.long_mean_error_pct - ideal.long_mean_error_pct) < 0.02


def test_evaporation_left_uncorrected_reads_as_under_delivery(tmp_path):
    # 0.5 mg/h lost from the container: 0.5 x 1.00285 uL/h of 16.667 uL/h, -3.01 %, unless
    # added back
    log = str(tmp_path / "evaporating.csv")
    corrected = accuracy.from_sim(500, 200, 2 * H, model=balance.Model(0, 0, 0.5), balance_csv=log)
    ideal = 100 * (67 * STROKE_UL - R) / R
    assert corrected.figures.mean_error_pct == pytest.approx(ideal, abs=1e-4)
    # read back from the log, written to 0.1 ug: within 0.002 % of it
    raw = accuracy.from_balance(log, RATE_NL_PER_DAY)
    assert raw.figures.mean_error_pct == pytest.approx(ideal - 100 * 0.5 * balance.ul_per_mg(20.0) / R, abs=2e-3)
    again = accuracy.from_balance(log, RATE_NL_PER_DAY, evaporation_mg_per_h=0.5)
    assert again.figures.mean_error_pct == pytest.approx(ideal, abs=2e-3)


# ---- balance logs ------------------------------------------------------------------------

def test_water_density_and_volume_per_milligram():
    # Tanaka et al. 2001: 998.2067 kg/m3 at 20 C, 999.9750 at 4 C (the maximum)
    assert balance.water_kg_m3(20.0) == pytest.approx(998.2067, abs=1e-4)
    assert balance.water_kg_m3(4.0) == pytest.approx(999.9750, abs=1e-4)
    # with air buoyancy (1.2 and 8000 kg/m3): 1000 x (1 - 1.2/8000) / (998.2067 - 1.2)
    assert balance.ul_per_mg(20.0) == pytest.approx(1000 * (1 - 1.2 / 8000) / (998.2067455 - 1.2))
    with pytest.raises(AccuracyError, match="from 0 to 40 C"):
        balance.water_kg_m3(45)


def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def ramp(rows=241, every_s=30, mg_per_s=R / H * 0.998):
    # (seconds, mg) of water arriving at the set rate: 16.667 uL/h as about 0.998 mg/uL
    return [(k * every_s, 20000.0 + k * every_s * mg_per_s) for k in range(rows)]


@pytest.mark.parametrize("layout", ["plain", "iso", "time of day", "semicolon", "mg header", "unit cell",
                                    "unit column", "tab"])
def test_every_balance_layout_gives_the_same_volumes(tmp_path, layout):
    rows = ramp()
    if layout == "plain":
        text = "seconds,grams\n" + "".join("%g,%.6f\n" % (t, m / 1000) for t, m in rows)
    elif layout == "iso":
        # the capture software's clock, across midnight
        t0 = datetime.datetime(2024, 5, 1, 23, 0, 0)
        text = "# exported by the capture software\ntime,mass\n" + "".join(
            "%s,%.6f\n" % ((t0 + datetime.timedelta(seconds=t)).isoformat(sep="T" if t % 60 else " "), m / 1000)
            for t, m in rows)
    elif layout == "time of day":
        # starts at 23:00 and crosses midnight
        text = "".join("%02d:%02d:%02d,%.6f\n" % ((23 + t // 3600) % 24, t // 60 % 60, t % 60, m / 1000)
                       for t, m in rows)
    elif layout == "semicolon":
        text = "Zeit;Masse\n" + "".join(("%g;%.6f\n" % (t, m / 1000)).replace(".", ",") for t, m in rows)
    elif layout == "mg header":
        text = "t_s,mass_mg\n" + "".join("%g,%.3f\n" % (t, m) for t, m in rows)
    elif layout == "unit cell":
        text = "".join("%g, %.6f g\n" % (t, m / 1000) if t % 60 else "%g,%.3f mg\n" % (t, m) for t, m in rows)
    elif layout == "unit column":
        text = "".join("%g,%.6f,g\n" % (t, m / 1000) for t, m in rows)
    else:
        text = "".join("%g\t%.6f\n" % (t, m / 1000) for t, m in rows)
    log = balance.read(write(tmp_path, "b.csv", text))
    assert log.times_s == [t for t, _ in rows]
    assert log.masses_mg == pytest.approx([m for _, m in rows], abs=1e-3)
    r = accuracy.from_balance(str(tmp_path / "b.csv"), RATE_NL_PER_DAY, temp_c=20.0)
    # 0.998 mg/uL against the true 1/ul_per_mg(20): a known error of the made-up balance
    want = 100 * (0.998 * balance.ul_per_mg(20.0) - 1)
    assert r.figures.mean_error_pct == pytest.approx(want, abs=0.01)  # 1 ug digits on 16.6 mg


@pytest.mark.parametrize("text, message", [
    ("", "no readings in it"),
    ("# only a comment\n", "no readings in it"),
    ("seconds grams\n1 2\n", "expected two columns"),
    ("0,1.0\n30\n", "b.csv:2: expected time, mass"),
    ("0,1.0\n30,1.0,g,extra\n", "b.csv:2: expected time, mass"),
    ("0,1.0\n30,heavy\n", "b.csv:2: 'heavy' is not a mass"),
    ("0,1.0\n30,1.0 kg\n", "b.csv:2: '1.0 kg' is not a mass"),
    ("0,1.0\nnoon,1.0\n", "b.csv:2: 'noon' is not a time"),
    ("0,1.0\n30,1.0\n30,1.1\n", "b.csv:3: time '30' is not after the line before"),
    ("0,1.0\n10:00:00,1.0\n", "b.csv:2: time '10:00:00' is a time of day, earlier lines give a seconds"),
    ("0,1.0\nnan,1.0\n", "b.csv:2: 'nan' is not a time"),
])
def test_bad_balance_logs_say_what_and_where(tmp_path, text, message):
    with pytest.raises(AccuracyError, match=message.replace("(", r"\(")):
        balance.read(write(tmp_path, "b.csv", text))


def test_balance_records_too_short_or_with_gaps_or_late_are_refused(tmp_path):
    short = write(tmp_path, "short.csv", "".join("%d,%.6f\n" % (t, m / 1000) for t, m in ramp(rows=100)))
    with pytest.raises(AccuracyError, match="covers 49.5 min after the start"):
        accuracy.from_balance(short, RATE_NL_PER_DAY)
    rows = ramp()
    del rows[50:53]
    gappy = write(tmp_path, "gap.csv", "".join("%d,%.6f\n" % (t, m / 1000) for t, m in rows))
    with pytest.raises(AccuracyError, match="gap of 2 min between 24.5 min and 26.5 min after the start"):
        accuracy.from_balance(gappy, RATE_NL_PER_DAY)
    with pytest.raises(AccuracyError, match="cannot read it"):
        accuracy.from_balance(str(tmp_path / "missing.csv"), RATE_NL_PER_DAY)


def test_the_start_is_given_after_the_first_reading_or_on_the_logs_clock(tmp_path):
    # readings every 30 s from 23:58:00; the water arrives at the set rate from 00:01:00
    k = 1 / balance.ul_per_mg(20.0)  # mg per uL
    text = "".join("%02d:%02d:%02d,%.7f\n" % ((86280 + t) // 3600 % 24, (86280 + t) // 60 % 60, t % 60,
                                               (20000 + max(0, t - 180) * R / H * k) / 1000)
                   for t in range(0, 3 * H, 30))
    log = write(tmp_path, "night.csv", text)
    for start in ("00:01:00", "3m", "180"):
        f = accuracy.from_balance(log, RATE_NL_PER_DAY, start=start).figures
        assert f.startup_delay_min == pytest.approx(0, abs=1e-3) and f.mean_error_pct == pytest.approx(0, abs=1e-3)
    # from the first reading, the pump started 3 min late
    assert accuracy.from_balance(log, RATE_NL_PER_DAY).figures.startup_delay_min == pytest.approx(3.0, abs=1e-3)
    with pytest.raises(AccuracyError, match="give a duration after the first reading .* or a time of day"):
        accuracy.from_balance(log, RATE_NL_PER_DAY, start="2024-05-01T00:01:00")
    seconds = write(tmp_path, "s.csv", "".join("%d,%.6f\n" % (t, m / 1000) for t, m in ramp()))
    with pytest.raises(AccuracyError, match="--start '10:00:00': give a duration"):
        accuracy.from_balance(seconds, RATE_NL_PER_DAY, start="10:00:00")


def test_a_blank_run_measures_the_evaporation(tmp_path):
    # the container alone loses 0.3 mg/h; the pump's log loses it too
    blank = write(tmp_path, "blank.csv", "".join("%d,%.7f\n" % (t, (20000 - 0.3 * t / H) / 1000)
                                                 for t in range(0, 4 * H, 60)))
    rows = [(t, m - 0.3 * t / H) for t, m in ramp(mg_per_s=R / H / balance.ul_per_mg(20.0))]
    log = write(tmp_path, "b.csv", "".join("%d,%.7f\n" % (t, m / 1000) for t, m in rows))
    assert accuracy.from_balance(log, RATE_NL_PER_DAY).figures.mean_error_pct == pytest.approx(
        -100 * 0.3 / (R / balance.ul_per_mg(20.0)), abs=1e-3)  # about -1.8 %
    r = accuracy.from_balance(log, RATE_NL_PER_DAY, blank=blank)
    assert r.figures.mean_error_pct == pytest.approx(0, abs=1e-3)
    assert "0.3000 mg/h" in r.notes[0]


# ---- the pump's own log --------------------------------------------------------------------

@pytest.fixture(scope="module")
def pump_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("pumplog")
    watch = str(d / "run.jsonl")
    bal = str(d / "balance.csv")
    sim = accuracy.from_sim(500, 200, 3 * H, balance_csv=bal, pump_log=watch,
                            model=balance.Model(0.01, 0.015, 0.02, seed=5))
    from tools import logformat
    events = [dict(b, t="log") for b in pumplog.read(watch) if "ev" in b]
    (d / "export.csv").write_text(logformat.render(events, "csv"))
    (d / "export.jsonl").write_text(logformat.render(events, "jsonl"))
    return d, sim


def test_the_pumps_count_and_its_rebuilt_schedule_agree_with_the_head(pump_files, ideal_26h):
    d, _ = pump_files
    truth = ideal_26h.figures
    counted = accuracy.from_pump_log(str(d / "run.jsonl"))
    assert counted.stroke_nl == 250 and counted.rate_nl_per_day == RATE_NL_PER_DAY
    assert counted.figures.trumpet == truth.trumpet
    assert counted.figures.mean_error_pct == pytest.approx(truth.mean_error_pct)
    assert counted.notes == []  # no stop: the idle frame before the fill is not a stop
    # the pump's own flash log, in its frame format (a torn last frame is skipped)
    sys.path.append(os.path.join(ROOT, "firmware"))
    from pump import wire
    events = [dict(b, t="event") for b in pumplog.read(str(d / "run.jsonl")) if "ev" in b]
    (d / "flash-log").write_bytes(b"".join(wire.encode(i, b) for i, b in enumerate(events)) + b"~1 99 {torn\n")
    for name in ("export.csv", "export.jsonl", "flash-log"):
        rebuilt = accuracy.from_pump_log(str(d / name), stroke_nl=250, duration_s=3 * H)
        assert rebuilt.figures.trumpet == truth.trumpet, name
        assert "rebuilt from its event log" in rebuilt.source


def test_the_modelled_balances_log_reads_back_to_the_same_figures(pump_files):
    d, sim = pump_files
    again = accuracy.from_balance(str(d / "balance.csv"), RATE_NL_PER_DAY, evaporation_mg_per_h=0.02)
    for a, b in zip(again.figures.trumpet, sim.figures.trumpet):
        assert a.ep_max_pct == pytest.approx(b.ep_max_pct, abs=1e-4)
        assert a.ep_min_pct == pytest.approx(b.ep_min_pct, abs=1e-4)
    assert again.figures.mean_error_pct == pytest.approx(sim.figures.mean_error_pct, abs=1e-4)


def status(t_s, delivered_nl, state="running", rate=400000, **more):
    body = {"t": "status", "up_day": int(t_s // 86400), "up_ms": int(t_s % 86400 * 1000), "state": state,
            "delivered_nl": delivered_nl, "rate_nl_per_day": rate if state == "running" else 0,
            "strokes_confirmed": delivered_nl // 250, "paused": False}
    body.update(more)
    return body


def event(t_s, ev, **fields):
    return dict({"t": "event", "ev": ev, "up_day": 0, "up_ms": int(t_s * 1000)}, **fields)


def frames_file(tmp_path, bodies, name="w.jsonl"):
    return write(tmp_path, name, "".join(json.dumps(b) + "\n" for b in bodies))


def steady(t0=0, hours=2.5, **kw):
    # status every 10 s from t0, a stroke every 54 s
    return [status(t, (t // PERIOD_S) * 250, **kw) for t in range(t0, t0 + int(hours * 3600) + 1, 10)]


def test_bad_pump_logs_say_why(tmp_path):
    power = event(0, "power_up", boots=1)
    running = event(0, "state", state="running")
    cases = [
        ([power, running] + steady() + [event(0, "power_up", boots=2)] + steady(),
         "holds 2 runs of the pump.*--run N"),
        ([power, running] + steady()[:400] + [event(4000, "fill", volume_nl=1)] + steady(4000)[:10],
         "a fill at day 0 01:06:40, after the start"),
        ([power, running] + steady()[:400] + [dict(s, rate_nl_per_day=500000) for s in steady(4000)[:10]],
         "set rate changed at day 0 01:06:40, from 400000 to 500000"),
        ([power, running] + steady()[:400] + [dict(s, paused=True) for s in steady(4000)[:10]], "paused at"),
        ([power] + steady(state="idle"), "never runs in it"),
        ([power, running] + [dict(s, delivered_nl=None) for s in steady()], "has no delivered_nl"),
        ([power, running] + steady()[::9], "has a gap: nothing between"),
    ]
    for bodies, message in cases:
        with pytest.raises(AccuracyError, match=message):
            accuracy.from_pump_log(frames_file(tmp_path, bodies))
    # the second run is there to be chosen
    two = frames_file(tmp_path, [power, running] + steady() + [event(0, "power_up", boots=2), running] + steady())
    assert accuracy.from_pump_log(two, run=2).figures.mean_error_pct == pytest.approx(100 * (67 * 0.25 - R) / R)
    with pytest.raises(AccuracyError, match="--run 3: .* holds 2 runs"):
        accuracy.from_pump_log(two, run=3)
    not_json = write(tmp_path, "x.jsonl", '{"t": "status"}\nnot json\n')
    with pytest.raises(AccuracyError, match="x.jsonl:2: not JSON"):
        accuracy.from_pump_log(not_json)
    bad_csv = write(tmp_path, "x.csv", "boot,up_day,up_ms,pump_time,ev\n1,0,0,day 0,state,extra\n")
    with pytest.raises(AccuracyError, match="x.csv:2: 6 cells, the header has 5"):
        accuracy.from_pump_log(bad_csv, stroke_nl=250, duration_s=3 * H)


def test_a_stop_shows_in_the_pumps_count(tmp_path):
    # delivery stops from 70 to 80 min: a 5-min window inside the stop gets nothing
    bodies = [event(0, "power_up", boots=1), event(0, "state", state="running")]
    for k in range(2 * 360 + 1):
        t = k * 10
        delivered = (min(t, 4200) // PERIOD_S + max(0, t - 4800) // PERIOD_S) * 250
        bodies.append(status(t, delivered, state="stopped" if 4200 < t < 4800 else "running"))
    r = accuracy.from_pump_log(frames_file(tmp_path, bodies))
    assert r.figures.trumpet[1].ep_min_pct == pytest.approx(-100.0)
    assert r.notes == ["delivery stopped 1 time during the record (status frames not running): the figures "
                       "include the stops"]


def test_a_watch_begun_after_delivery_started_starts_at_its_first_frame(tmp_path):
    # the console attached 540 s (10 strokes) into the run: no state event, frames only
    r = accuracy.from_pump_log(frames_file(tmp_path, steady(540, hours=2.5)))
    assert "begins with the pump already running (at day 0 00:09:00 since power-up)" in r.notes[0]
    # its second hour is 69-129 min into delivery: strokes k = 77..143, 67 of them
    assert r.figures.mean_error_pct == pytest.approx(100 * (67 * STROKE_UL - R) / R)


def test_the_bench_routine_prime_pause_resume_starts_at_the_resume(tmp_path):
    # programmed and primed from 0, paused at 600 s (keep-open 0: nothing moves), resumed
    # at 1200 s; strokes then every 54 s from the resume
    bodies = [event(0, "power_up", boots=1), event(0, "fill", volume_nl=20000000),
              event(0, "program", conc_ug_per_ml=500, profiles={"all": [[0, 200000]]}),
              event(0, "state", state="running")]
    bodies += [status(t, (t // PERIOD_S) * 250) for t in range(0, 600, 10)]
    bodies.append(event(600, "pause", keep_open_nl_per_day=0))
    primed = (600 // PERIOD_S) * 250
    bodies += [status(t, primed, paused=True) for t in range(600, 1200, 10)]
    bodies.append(event(1200, "resume"))
    bodies += [status(t, primed + ((t - 1200) // PERIOD_S) * 250) for t in range(1200, 1200 + 3 * H, 10)]
    r = accuracy.from_pump_log(frames_file(tmp_path, bodies))
    f = r.figures
    assert r.notes == ["paused at day 0 00:10:00: the test is taken from the resume at day 0 00:20:00"]
    assert f.startup_delay_min == pytest.approx(60 - 60 * 66 / 67)
    assert f.mean_error_pct == pytest.approx(100 * (67 * STROKE_UL - R) / R)
    # the same from the events alone: the schedule rebuilt from the resume
    events = [b for b in bodies if "ev" in b]
    rebuilt = accuracy.from_pump_log(frames_file(tmp_path, events, "ev.jsonl"), stroke_nl=250, duration_s=3 * H)
    assert rebuilt.figures.trumpet == f.trumpet and rebuilt.notes == r.notes
    # paused and never resumed: nothing to measure
    with pytest.raises(AccuracyError, match="paused at day 0 00:10:00 and never resumed"):
        accuracy.from_pump_log(frames_file(tmp_path, bodies[:bodies.index(events[-1])], "p.jsonl"))


def test_an_event_log_alone_needs_the_stroke_and_the_duration_and_one_rate(pump_files, tmp_path):
    d, _ = pump_files
    export = str(d / "export.csv")
    with pytest.raises(AccuracyError, match="needs the pump's stroke volume: give --stroke-nl"):
        accuracy.from_pump_log(export)
    with pytest.raises(AccuracyError, match="how long the pump ran after its last record: give --duration"):
        accuracy.from_pump_log(export, stroke_nl=250)
    flex = [event(0, "power_up", boots=1),
            event(0, "program", conc_ug_per_ml=500, profiles={"d": [[0, 100000], [480, 300000]]}),
            event(0, "state", state="running")]
    with pytest.raises(AccuracyError, match="2 different dose rates: the accuracy test needs one constant rate"):
        accuracy.from_pump_log(frames_file(tmp_path, flex), stroke_nl=250, duration_s=3 * H)
    bolus = flex[:1] + [event(0, "program", conc_ug_per_ml=500, profiles={"d": [[0, 200000]]}), flex[2],
                        event(1800, "bolus_start", kind="clinician")]
    with pytest.raises(AccuracyError, match="a `bolus_start` event at day 0 00:30:00"):
        accuracy.from_pump_log(frames_file(tmp_path, bolus), stroke_nl=250, duration_s=3 * H)


# ---- the picture ---------------------------------------------------------------------------

def png_panels(path):
    from PIL import Image
    img = Image.open(path)
    meta = json.loads(img.text[report.PNG_KEY])
    return img.convert("RGB"), meta


def colour_near(img, box, hex_colour, tolerance=40):
    # pixels of this colour inside the box (x0, y0, x1, y1; rows from the top)
    import numpy
    want = numpy.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)])
    x0, y0, x1, y1 = box
    crop = numpy.asarray(img, dtype=int)[y0:y1, x0:x1]
    return int((numpy.abs(crop - want).sum(axis=2) <= tolerance).sum())


def test_the_png_has_its_panels_lines_and_axes(tmp_path, ideal_26h):
    out = str(tmp_path / "acc.png")
    report.render_png(ideal_26h, out, 1000, 1100)
    img, meta = png_panels(out)
    assert img.size == (1000, 1100) and (meta["width_px"], meta["height_px"]) == (1000, 1100)
    panels = {p["name"]: p for p in meta["panels"]}
    assert list(panels) == ["start-up", "trumpet", "long windows"]
    f = ideal_26h.figures
    start = panels["start-up"]
    assert start["xlim"] == [0, 120]
    assert start["ylim"][0] <= 0 and start["ylim"][1] >= 30  # one stroke in 0.5 min is 30 uL/h
    trumpet = panels["trumpet"]
    assert trumpet["xlim"] == [0, 33]
    assert trumpet["ylim"][0] < -10 < 35 < trumpet["ylim"][1]  # Ep(min) and Ep(max) at 2 min inside
    assert panels["long windows"]["xlim"] == [0, 25]
    boxes = [p["box_px"] for p in meta["panels"]]
    assert all(b[3] <= c[1] for b, c in zip(boxes, boxes[1:]))  # one above the other
    for p in meta["panels"]:
        assert set(p["lines"]) >= ({"flow", "set rate"} if p["name"] == "start-up" else {"Ep(max)", "Ep(min)"})
        for label, colour in p["lines"].items():
            assert colour_near(img, p["box_px"], colour) > 20, (p["name"], label)
    # a colour that is not drawn is not found: the check can fail
    assert colour_near(img, boxes[0], "#d62728") == 0
    assert f.long and meta["panels"][2]["lines"]["mean error"] == report.COLOURS["mean error"]


def test_a_two_hour_record_draws_two_panels(tmp_path):
    r = accuracy.from_sim(2000, 20, 2 * H)
    out = str(tmp_path / "short.png")
    report.render_png(r, out)
    img, meta = png_panels(out)
    assert [p["name"] for p in meta["panels"]] == ["start-up", "trumpet"]
    # 2 strokes of 0.25 uL in the second hour against 0.4167 uL: +20 %; the 2 min window
    # that holds one stroke: +1700 %, so the axis reaches past it
    assert r.figures.mean_error_pct == pytest.approx(20.0)
    assert meta["panels"][1]["ylim"][1] > 1700


# ---- the command line ----------------------------------------------------------------------

def test_command_line_prints_the_tables_and_exits_2_with_one_line_on_bad_input(tmp_path, capsys):
    out = str(tmp_path / "sim.png")
    assert main(["sim", "--duration", "2h", "--ideal", "-o", out]) == 0
    text = capsys.readouterr().out
    assert "Trumpet curve (IEC 60601-2-24:2012, 201.12.1)" in text
    assert "2 min   +35.00 %  -10.00 %  117      45.00 %" in text
    assert "Overall mean error A (IEC 60601-2-24:2012, 201.12.1, the second hour): +0.50 %." in text
    assert os.path.getsize(out) > 10000
    assert main(["sim", "--duration", "2h", "--ideal", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["rate_nl_per_day"] == "400000" and data["trumpet"][0]["ep_min_pct"] == pytest.approx(-10)
    for argv, message in [
        (["balance", str(tmp_path / "none.csv"), "--rate", "0.4mL/day"], "none.csv: cannot read it"),
        (["balance", out, "--rate", "fast"], "rate 'fast': give a number and a unit"),
        (["sim", "--program", "baclofen:500"], "program 'baclofen:500': expected DRUG:CONC"),
        (["sim", "--duration", "1h"], "covers 60 min after the start"),
        (["sim", "--duration", "soon"], "duration 'soon'"),
        (["sim", "--temp-c", "50", "--duration", "2h"], "water temperature 50 C"),
    ]:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("accuracy: ") and message in err and err.count("\n") == 1, err


def test_rates_and_durations_parse_exactly():
    assert accuracy.parse_rate("0.4mL/day") == 400000
    assert accuracy.parse_rate("16.667 uL/h") == Fraction(16667 * 24)
    assert accuracy.parse_rate("0.5 µL/h") == 12000
    assert accuracy.parse_rate("400000 nL/day") == 400000
    assert accuracy.parse_duration("2.5h") == 9000 and accuracy.parse_duration("90") == 90
    for bad in ("0mL/day", "1 L/day", "-1uL/h"):
        with pytest.raises(AccuracyError):
            accuracy.parse_rate(bad)


def test_python_dash_m_runs_the_tool():
    proc = subprocess.run([sys.executable, "-m", "tools.accuracy", "balance", "/nonexistent.csv", "--rate", "1uL/h"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "accuracy: /nonexistent.csv: cannot read it" in proc.stderr


def test_the_bench_program_runs_0_4_ml_a_day_and_nothing_while_paused():
    # docs/bench.md's procedure pauses the pump between priming and the test
    from tools import programfile
    wire = programfile.load_checked(os.path.join(ROOT, "programs", "bench-accuracy-500.toml")).wire()
    program = wire["program"]
    assert program["keep_open_nl_per_day"] == 0
    rates = {step[1] for steps in program["profiles"].values() for step in steps}
    assert [accuracy.program_rate_nl_per_day(program["conc_ug_per_ml"], r // 1000) for r in rates] == [400000]


def test_the_docs_examples_read_and_the_density_table_is_the_codes(tmp_path):
    text = open(os.path.join(ROOT, "docs", "bench.md")).read()
    block = text.split("The tool reads two layouts")[1].split("```")[1].strip("\n").splitlines()
    columns = [[line[0:21].strip() for line in block], [line[21:53].strip() for line in block],
               [line[53:].split("(")[0].strip() for line in block]]
    for n, col in enumerate(columns):
        log = balance.read(write(tmp_path, "doc%d.csv" % n, "\n".join(col) + "\n"))
        assert log.times_s == [0, 30, 60] and log.masses_mg == pytest.approx([20000.02, 20000.16, 20000.30]), col
    rows = text.split("| water at | density, g/mL | µL per mg shown |")[1].split("\n\n")[0].splitlines()[2:]
    assert len(rows) == 4
    for row in rows:
        t, rho, ul = (c.strip() for c in row.strip("|").split("|"))
        t = float(t.split()[0])
        assert rho == "%.4f" % (balance.water_kg_m3(t) / 1000) and ul == "%.5f" % balance.ul_per_mg(t)


def test_the_docs_trumpet_table_is_what_the_simulated_pico_gives(ideal_26h):
    # docs/bench.md, "Reading the curves": the ideal balance at 0.4 mL/day
    text = open(os.path.join(ROOT, "docs", "bench.md")).read()
    table = text.split("| window | Ep(max) | Ep(min) | one stroke |")[1].split("\n\n")[0].splitlines()[2:]
    f = ideal_26h.figures
    assert len(table) == len(f.trumpet + f.long) == 8
    for row, w in zip(table, f.trumpet + f.long):
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[0] == ("%d min" % w.minutes if w.minutes < 60 else "%d h" % (w.minutes // 60))
        got = [float(c.rstrip(" %")) for c in cells[1:]]
        assert got == [pytest.approx(round(v, 2), abs=1e-9) for v in (w.ep_max_pct, w.ep_min_pct, w.stroke_pct)], row
    assert "Overall mean error A +0.50 %" in text and round(f.mean_error_pct, 2) == 0.50


def test_make_bench_prints_the_trumpet_at_the_typical_and_the_minimal_rate():
    from tools import bench_flow
    (title, header, rows, notes), = bench_flow.tables(days=2)
    assert "trumpet" in title and len(header) == 7
    by_window = {r[0]: r for r in rows}
    assert by_window["2 min"][1:4] == ("+35.00 %", "-10.00 %", "45.00 %")
    # 10 uL/day: a 2-min window should get 0.0139 uL; it gets no stroke (-100 %) or one
    # (0.25 uL, +1700 %)
    assert by_window["2 min"][4:] == ("+1700.00 %", "-100.00 %", "1800.00 %")
    assert by_window["24 h *"][1] == "+0.00 %"
    assert any(n.startswith("CPU time: ") for n in notes)
