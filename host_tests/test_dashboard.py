# The live dashboard's pieces on their own (tools/dashboard.py): the dose chart, the alarm
# rows, the layout in a given terminal size and the curses painter, without a terminal
# or a pump. Every rendering is checked as the exact text a user would see.
from tools import dashboard as d
from tools.dashboard import Bucket, Dashboard, DoseHistory, LinkHealth

DAY = 86400000
HOUR = 3600000


def status(t_ms, state="running", strokes=0, rate=200000, **more):
    # baclofen 500 ug/mL on a 250 nL stroke: 125 ng a stroke
    delivered_ng = strokes * 125
    body = {"t": "status", "up_day": t_ms // DAY, "up_ms": t_ms % DAY, "state": state,
            "stop_reason": more.pop("stop_reason", None), "paused": False, "drug": "baclofen",
            "conc_ug_per_ml": 500, "dose_ug_per_day": rate // 1000 if state == "running" else 0,
            "rate_ng_per_day": rate if state == "running" else 0,
            "rate_nl_per_day": rate * 2 if state == "running" else 0,
            "strokes_programmed": more.pop("programmed", strokes), "strokes_confirmed": strokes,
            "strokes_unconfirmed": 0, "delivered_nl": delivered_ng * 2, "delivered_ng": delivered_ng,
            "reservoir_nl": 20000000 - delivered_ng * 2, "reservoir_ng": (20000000 - delivered_ng * 2) // 2,
            "days_to_low": 44, "days_to_empty": 49, "alarms": [], "silenced": False,
            "pressure_mbar": 23, "pressure_excess_mbar": 4, "battery_mv": 4803}
    body.update(more)
    return body


def twelve_hours_with_a_stop():
    # 300 ug/day (100 strokes an hour) for 5 h, stopped 3 h (occlusion), then running
    # again: one frame an hour.
    h = DoseHistory()
    strokes = 0
    for k in range(13):
        stopped = 5 <= k < 8
        h.add(status(k * HOUR, "stopped" if stopped else "running", strokes, rate=300000,
                     stop_reason="occlusion" if stopped else None))
        if not stopped:
            strokes += 100
    return h


# ---- the chart ---------------------------------------------------------------------------

def test_bars_show_delivered_and_the_programmed_level_over_every_bar():
    # The programmed line never hides under the bars: it tops a bar that reaches it,
    # crosses one that goes past it (a bolus), floats above one that falls short.
    columns = [Bucket(200000, 200000), Bucket(100000, 200000), Bucket(0, 200000), None,
               Bucket(250000, 200000), Bucket(0, 0)]
    # 3 rows of 8 eighths up to 250 µg/day: 200 is 19 eighths, 100 is 10
    assert d.bar_chart(columns, 3, 250000) == [
        "─── ─ ",
        "█▂  █ ",
        "██  █ ",
    ]
    assert d.bar_chart(columns, 3, 250000, ascii=True) == [
        "--- - ",
        "#.  # ",
        "##  # ",
    ]
    # a bolus on top of the basal: the basal's line crosses the bar
    tall = d.bar_chart([Bucket(600000, 300000)], 3, 600000)
    assert tall == ["█", "─", "█"]


def test_nice_top_rounds_the_scale_up():
    assert [d.nice_top(v) for v in (0, 1, 7, 101, 199992, 200001, 1234567)] == \
        [1, 10, 10, 120, 200000, 250000, 1500000]


def test_chart_of_a_stop_shows_the_missing_dose():
    h = twelve_hours_with_a_stop()
    assert d.dose_chart(h, 40, 3) == [
        "Dose per 1 h, µg/day:  █ delivered  ─ pr",
        "   300 ┤────────────",
        "       │█████   ████",
        "     0 ┤█████   ████",
        "        12 h ago now",
    ]
    assert d.dose_chart(h, 80, 2, ascii=True) == [
        "Dose per 1 h, µg/day:  # delivered  - programmed basal",
        "   300 |------------",
        "     0 |#####   ####",
        "        12 h ago now",
    ]


def test_chart_buckets_widen_to_fit_the_width_and_hold_the_rate_over_a_stop():
    h = DoseHistory()
    for k in range(4 * 96 + 1):  # four days at 300 ug/day, one frame every 15 minutes
        h.add(status(k * 900000, strokes=k * 25, rate=300000))
    size, start, columns = h.buckets(40)
    assert size == 3 * HOUR and start == 0 and len(columns) == 32
    assert set(columns) == {Bucket(300000, 300000)}
    size, start, columns = h.buckets(200)
    assert size == 30 * 60000 and start == 0 and len(columns) == 192
    size, start, columns = h.buckets(20)  # too narrow for all of it: the newest days
    assert size == 6 * HOUR and start == 0 and len(columns) == 16
    size, start, columns = h.buckets(10)
    assert size == 12 * HOUR and start == 0 and len(columns) == 8


def test_programmed_is_the_reported_rate_and_holds_it_over_a_stop():
    h = DoseHistory()
    h.add(status(0, strokes=0, rate=300000))
    h.add(status(HOUR, strokes=90, programmed=100, rate=100000))  # a flex step within the hour
    h.add(status(2 * HOUR, "stopped", strokes=90, programmed=100))  # stopped: rate 0 reported
    h.add(status(3 * HOUR, "stopped", strokes=90, programmed=100))
    h.add(status(4 * HOUR, "idle", strokes=90, programmed=100))
    h.add(status(5 * HOUR, "idle", strokes=90, programmed=100))
    # a change between two frames is taken half-way; the rate is held while stopped;
    # idle programs nothing
    assert [p // dt for _, dt, _, p in h.intervals] == [200000, 100000, 100000, 100000, 0]
    assert [ng for _, _, ng, _ in h.intervals] == [11250, 0, 0, 0, 0]


def test_a_fill_and_a_restart_do_not_break_the_history():
    h = DoseHistory()
    h.add(status(0, strokes=0))
    h.add(status(HOUR, strokes=72))
    h.add(status(2 * HOUR, strokes=8))  # filled meanwhile: counted from zero again
    h.add(status(30 * 60000, strokes=16))  # restarted: the pump's time went back
    h.add(status(HOUR + 30 * 60000, strokes=80))
    assert [(t, dt, ng) for t, dt, ng, _ in h.intervals] == [
        (HOUR, HOUR, 9000), (2 * HOUR, HOUR, 1000), (3 * HOUR, HOUR, 8000)]


def test_no_chart_before_two_frames_and_the_layout_does_not_move():
    h = DoseHistory()
    assert d.dose_chart(h, 60, 3) == ["Dose: the chart starts at the second status frame", "", "", "", ""]
    h.add(status(0))
    assert len(d.dose_chart(h, 60, 3)) == 5


# ---- alarms ------------------------------------------------------------------------------

ALARMS = [["clock_not_set", "low", False, True], ["reservoir_low", "medium", True, True],
          ["occlusion", "high", False, True], ["watchdog_reset", "medium", False, False]]


def test_alarm_rows_highest_priority_first_with_marks_and_styles():
    s = status(0, alarms=ALARMS)
    assert d.alarm_rows(s) == [
        ("Alarms", "!!! occlusion        high    NOT ACKNOWLEDGED  condition present", "high"),
        ("", "!!  reservoir_low    medium  acknowledged  condition present", "medium-acked"),
        ("", "!!  watchdog_reset   medium  NOT ACKNOWLEDGED  condition gone", "medium"),
        ("", "!   clock_not_set    low     NOT ACKNOWLEDGED  condition present", "low"),
    ]
    assert d.alarm_rows(status(0)) == [("Alarms", "none", "")]
    assert d.alarm_rows(status(0, alarms=ALARMS[:1], silenced=True)) == [
        ("Alarms", "!   clock_not_set    low     NOT ACKNOWLEDGED  condition present", "low"),
        ("Sound", "silenced (the alarm light stays on)", ""),
    ]


def test_alarms_in_the_plain_line_and_the_status_rows():
    s = status(5 * HOUR, "stopped", 333, stop_reason="occlusion", alarms=ALARMS, silenced=True)
    line = d.plain_line(s)
    assert line.startswith("day 0 05:00:00  stopped (occlusion)  baclofen")
    assert line.endswith("  alarms occlusion!!! reservoir_low!!(acked) watchdog_reset!! clock_not_set! silenced")
    assert d.plain_line(status(0)).endswith("unconfirmed")  # no alarms, nothing added
    rows = dict((label, text) for label, text in d.status_fields(s) if label)
    assert rows["Pump"] == "stopped (occlusion)"
    assert rows["Rate"] == "0 mL/day  0 µg/day"
    assert rows["Reservoir"] == "19.91675 mL  9.958375 mg"
    assert rows["Refill"] == "low level in 44 days, empty in 49 days, worst case"
    assert rows["Sensors"] == "pressure 23 mbar (+4 over baseline)  battery 4.803 V"
    assert rows["Alarms"].startswith("!!! occlusion")
    running = dict(d.status_fields(status(HOUR, strokes=67, days_to_low=-1, days_to_empty=1,
                                          battery_mv=0)))
    assert running["Rate"] == "0.4 mL/day  200 µg/day"
    assert running["Reservoir"] == "19.98325 mL  9.991625 mg"
    assert running["Refill"] == "low level in over 999 days, empty in 1 day, worst case"
    assert running["Sensors"] == "pressure 23 mbar (+4 over baseline)  battery not read yet"


def test_a_status_without_the_newer_fields_still_shows():
    old = {k: v for k, v in status(HOUR, strokes=67).items()
           if k not in ("alarms", "silenced", "days_to_low", "days_to_empty", "pressure_mbar",
                        "pressure_excess_mbar", "battery_mv", "reservoir_ng", "rate_ng_per_day")}
    labels = [label for label, _ in d.status_fields(old)]
    assert labels == ["Clock", "Pump", "Program", "Rate", "Delivered", "Reservoir", "Strokes"]
    assert dict(d.status_fields(old))["Reservoir"] == "19.98325 mL  49.9 days left at this rate"


# ---- the whole screen ----------------------------------------------------------------------

def fed_dashboard(events=5, alarms=ALARMS[:1]):
    dash = Dashboard("Simulated Pico on /dev/pts/9", ascii=False)
    for k in range(events):
        dash.feed({"t": "event", "ev": "e%d" % k, "up_day": 0, "up_ms": k})
    for k in range(13):
        dash.feed(status(k * HOUR, strokes=k * 100, rate=300000, alarms=alarms))
    dash.feed({"t": "result", "ok": True})  # not shown
    return dash


HEALTH = LinkHealth(20, 0, 0, 0, 0, 0.5)


def test_screen_fits_the_terminal_events_first_then_the_chart():
    dash = fed_dashboard()
    # 30 rows: every event and a 4-row chart
    lines = dash.lines(HEALTH, 100, 30)
    assert len(lines) == 30
    assert lines[0] == "Simulated Pico on /dev/pts/9"
    assert "Rate            0.6 mL/day  300 µg/day" in lines
    assert lines[-9:] == ["", "Last events"] + ["  day 0 00:00:00  e%d" % k for k in (4, 3, 2, 1, 0)] + \
        ["", "q or Ctrl-C: quit"]
    chart = lines[lines.index("Last events") - 7:lines.index("Last events") - 1]
    assert chart[0].startswith("Dose per 1 h, µg/day:  █ delivered  ─ programmed basal")
    assert chart[1].startswith("   300 ┤") and chart[4].startswith("     0 ┤") and len(chart) == 6
    # 24 rows: no room for a chart next to the events (one row stays free)
    lines = dash.lines(HEALTH, 80, 24)
    assert len(lines) == 23 and not any(line.startswith("Dose") for line in lines)
    assert "  day 0 00:00:00  e0" in lines
    # tall: the chart at its tallest
    lines = dash.lines(HEALTH, 80, 60)
    assert sum(1 for line in lines if "┤" in line or "│" in line) == d.CHART_MAX_ROWS
    # every line within the width
    assert all(len(line) <= 50 for line in dash.lines(HEALTH, 50, 40))


def test_screen_styles_mark_alarms_and_a_stop():
    dash = fed_dashboard(alarms=ALARMS)
    dash.feed(status(13 * HOUR, "stopped", stop_reason="occlusion", alarms=ALARMS))
    dash.feed({"t": "event", "ev": "alarm", "code": "occlusion", "state": "raised", "priority": "high",
               "up_day": 0, "up_ms": 13 * HOUR})
    rows = dash.rows(HEALTH, 100, 40)
    styled = [(text.split()[0] if text.strip() else "", style) for text, style in rows if style]
    assert styled == [("Simulated", "title"), ("Pump", "high"), ("Alarms", "high"),
                      ("!!", "medium-acked"), ("!!", "medium"), ("!", "low"), ("day", "high")]


def test_waiting_screen():
    dash = Dashboard("Pump on /dev/ttyACM0", ascii=True)
    lines = dash.lines(LinkHealth(), 80, 24)
    assert lines[:3] == ["Pump on /dev/ttyACM0", "", "Waiting for the first status frame..."]
    assert "Link            0 frames received, 0 lost, no frame yet" in lines
    assert lines[-3:] == ["  none yet", "", "q or Ctrl-C: quit"]


class FakeCurses:
    A_BOLD, A_REVERSE = 1, 2
    COLOR_RED, COLOR_YELLOW, COLOR_CYAN, COLOR_BLACK = 1, 3, 6, 0

    class error(Exception):
        pass

    def __init__(self, colours):
        self.colours = colours
        self.pairs = {}

    def has_colors(self):
        return self.colours

    def start_color(self):
        pass

    def use_default_colors(self):
        pass

    def init_pair(self, n, fg, bg):
        self.pairs[n] = (fg, bg)

    def color_pair(self, n):
        return n << 8


class FakeScreen:
    def __init__(self, height, width):
        self.size = (height, width)
        self.cells = {}

    def getmaxyx(self):
        return self.size

    def erase(self):
        self.cells = {}

    def addstr(self, row, col, text, attr):
        assert len(text) < self.size[1] and row < self.size[0]
        self.cells[row] = (text, attr)

    def refresh(self):
        pass


def test_painter_draws_styles_as_curses_attributes():
    curses = FakeCurses(colours=True)
    painter = d.Painter(curses)
    assert curses.pairs == {1: (1, -1), 2: (3, -1), 3: (6, -1)}
    screen = FakeScreen(40, 100)
    painter.draw(screen, fed_dashboard(alarms=ALARMS), HEALTH)
    attrs = {text.split()[0] if text.strip() else "": attr for text, attr in screen.cells.values() if attr}
    assert attrs["Simulated"] == curses.A_BOLD
    assert attrs["Alarms"] == curses.A_REVERSE | curses.A_BOLD | (1 << 8)
    assert d.Painter(FakeCurses(colours=False)).attrs["medium"] == curses.A_BOLD


def test_the_program_row_shows_a_dose_only_while_one_runs():
    running = status(0, drug="baclofen", conc_ug_per_ml=500, dose_ug_per_day=200)
    assert d.program(running) == "baclofen  500 µg/mL  200 µg/day"
    stopped = status(0, state="stopped", drug="baclofen", conc_ug_per_ml=500, dose_ug_per_day=0)
    assert d.program(stopped) == "baclofen  500 µg/mL"
    empty = status(0, state="idle", drug="baclofen", conc_ug_per_ml=0, dose_ug_per_day=0)
    assert d.program(empty) == "baclofen  (the reservoir was never filled)"
    assert d.program(status(0, drug=None)) == "none"
