"""The visit report: what a pump programmer prints after a refill visit, as HTML (and PDF).

    python -m tools.console report -o visit.html --port /dev/ttyACM0 --patient "J. Doe, 1970-01-01"
    python -m tools.console report -o visit.pdf --port /dev/ttyACM0      # printed by Chromium

One page a clinician can file: the pump and patient identifiers; the program before the
visit and now, with what changed; the refill (residual expected and withdrawn, volume and
concentration added, bridge); the alarms since the last visit with their times; the drug
delivered against programmed per day, with the chart; the next refill date by the pump's
worst case. Everything comes from the pump (hello, settings, status, its log), placed on
its wall clock (tools/clinical.py). The chart is the plot's (tools/plot.py) as inline
SVG, so the page is one file and prints as it shows. A PDF is the same page printed by a
headless Chromium (Debian's `chromium` package), offline.
"""
from __future__ import annotations

import argparse
import html
import os
import shutil
import subprocess
import tempfile
from typing import Any

from tools import clinical
from tools.clinical import DAY_MS, UG, drug, ml

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
# Flags that let a headless Chromium run here: as root (no sandbox), no GPU, no network
# of its own, a profile of its own.
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync")
CHROMIUM_TIMEOUT_S = 120


class ReportError(Exception):
    """The report cannot be made; the message says why and what to do."""


def chromium() -> str | None:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def run_chromium(args: list[str], scratch: str) -> subprocess.CompletedProcess[str]:
    exe = chromium()
    if exe is None:
        raise ReportError("a PDF needs Chromium, which is not installed (apt-get install chromium); the HTML "
                          "report needs nothing: give -o visit.html")
    profile = tempfile.mkdtemp(prefix="chromium-profile-", dir=scratch)
    argv = [exe, *CHROMIUM_FLAGS, "--user-data-dir=" + profile, *args]
    try:
        return subprocess.run(argv, capture_output=True, text=True, timeout=CHROMIUM_TIMEOUT_S,
                              env=dict(os.environ, HOME=scratch))
    except subprocess.TimeoutExpired:
        raise ReportError("Chromium did not finish within %d s" % CHROMIUM_TIMEOUT_S) from None


def html_to_pdf(html_path: str, pdf_path: str) -> None:
    from tools.keystore import write_private
    with tempfile.TemporaryDirectory(prefix="pump-report-") as scratch:
        out = os.path.join(scratch, "report.pdf")
        proc = run_chromium(["--no-pdf-header-footer", "--print-to-pdf=" + out, "file://" + os.path.abspath(html_path)],
                            scratch)
        if not os.path.exists(out):
            raise ReportError("Chromium printed no PDF (exit %d): %s" % (proc.returncode, proc.stderr.strip()[-300:]))
        with open(out, "rb") as f:
            write_private(pdf_path, f.read())


# ---- what the report says ------------------------------------------------------------------

def _e(text: Any) -> str:
    return html.escape(str(text))


def _when(w: int | None, body: dict[str, Any]) -> str:
    return clinical.when_text(body, w)


class Visit:
    """The report's facts, from the pump's answers and its log."""

    def __init__(self, hello: dict[str, Any], settings: dict[str, Any], status: dict[str, Any],
                 records: list[dict[str, Any]], since: str | None = None, patient: str = "") -> None:
        self.hello = hello
        self.settings = settings
        self.status = status
        self.records = records
        self.patient = patient
        walls = clinical.place_on_wall_clock(list(records) + [status])
        self.walls = walls[:len(records)]
        self.now = clinical.wall_of_clock(status.get("clock"))
        today = self.now - self.now % DAY_MS if self.now is not None else None
        # the visit: today on the pump's clock; the last visit: --since, else the refill
        # (or fill) before today
        self.visit_start = today
        self.since: int | None = None
        if since:
            from tools.simpico import parse_clock
            day, ms = parse_clock(since + "T00:00")
            self.since = day * DAY_MS + ms
        else:
            fills = [w for r, w in zip(records, self.walls) if r.get("ev") in ("refill", "fill") and w is not None
                     and (today is None or w < today)]
            self.since = fills[-1] if fills else None

    def in_visit(self, w: int | None) -> bool:
        return w is not None and self.visit_start is not None and w >= self.visit_start

    def after_since(self, w: int | None) -> bool:
        return self.since is None or (w is not None and w >= self.since)

    def program_before(self) -> dict[str, Any] | None:
        before = None
        for r, w in zip(self.records, self.walls):
            if r.get("ev") == "program" and not self.in_visit(w):
                before = r
        return before

    def events(self, kinds: tuple[str, ...], visit_only: bool = False) -> list[tuple[int | None, dict[str, Any]]]:
        out = []
        for r, w in zip(self.records, self.walls):
            if r.get("ev") in kinds and (self.in_visit(w) if visit_only else self.after_since(w)):
                out.append((w, r))
        return out

    def daily(self) -> list[tuple[str, float, float]]:
        # (date, programmed µg, delivered µg) per wall-clock day since the last visit,
        # from the plot's model of the log (delivery rebuilt: the basal while running,
        # plus what each bolus gave)
        from tools import plot
        model = plot.Model(plot.timeline(self.records, [self.status]))
        if not model.wall:
            return []
        pt, pv = plot.cumulative(plot.add_steps([model.programmed, model.bolus_asked]))
        dt, dv = plot.cumulative(model.delivered_rebuilt())
        start = max(model.t_start, self.since or model.t_start)
        day0 = start - start % DAY_MS
        rows = []
        d = day0
        while d < model.t_end:
            a, b = max(d, start), min(d + DAY_MS, model.t_end)
            prog = plot._interp(pt, pv, b) - plot._interp(pt, pv, a)
            given = plot._interp(dt, dv, b) - plot._interp(dt, dv, a)
            rows.append((clinical.date_text(d) + ("" if b - a == DAY_MS else " (part)"), prog / 1000, given / 1000))
            d += DAY_MS
        return rows[-62:]


def _program_rows(program: dict[str, Any] | None) -> list[str]:
    if not program:
        return ["none"]
    from tools.commands import patient_text, schedule_lines
    rows = [clinical.program_text(program)]
    rows += schedule_lines(program)
    rows.append("patient bolus: " + patient_text(program.get("patient_bolus")))
    return rows


def render_html(v: Visit, chart_svg: str | None) -> str:
    s = v.status
    dev = v.hello.get("dev") or "?"
    now = clinical.wall_text(v.now) if v.now is not None else "clock not set"
    parts: list[str] = []
    add = parts.append
    add("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>Pump visit %s %s</title>" % (
        _e(dev), _e(now)))
    add("<style>body{font:11pt sans-serif;margin:1.5cm;max-width:18cm}h1{font-size:16pt}h2{font-size:13pt;"
        "margin-top:1.2em;border-bottom:1px solid #888}table{border-collapse:collapse;width:100%}"
        "td,th{border:1px solid #bbb;padding:2px 6px;text-align:left;vertical-align:top;overflow-wrap:anywhere}"
        ".num{text-align:right}.warn{color:#b00;font-weight:bold}svg{width:100%;height:auto}"
        "@media print{h2{break-after:avoid}}</style></head><body>")
    add("<h1>Pump visit report</h1>")
    add("<table id='identity'>")
    for label, value in (("Patient", v.patient or "(not given: --patient)"), ("Pump", dev),
                         ("Firmware", "%s (protocol %s)" % (v.hello.get("firmware"), v.hello.get("version"))),
                         ("Pump clock", now + ("  (restored after a restart: time without power is missing)"
                                               if s.get("clock_restored") else "")),
                         ("Last visit", clinical.wall_text(v.since) if v.since is not None else "not in the log")):
        add("<tr><th>%s</th><td>%s</td></tr>" % (_e(label), _e(value)))
    add("</table>")

    add("<h2>Program</h2><table id='program'><tr><th>Before the visit</th><th>Now</th></tr>")
    before = v.program_before()
    after = v.settings.get("program")
    add("<tr><td>%s</td><td>%s</td></tr>" % ("<br>".join(_e(r) for r in _program_rows(before)),
                                             "<br>".join(_e(r) for r in _program_rows(after))))
    add("</table>")
    from tools.commands import program_diff
    diff = program_diff(before, after) if after and before != after else []
    if after and before and before.get("profiles") != after.get("profiles"):
        old_d, new_d = clinical.weekday_daily_ng(before), clinical.weekday_daily_ng(after)
        add("<p class='warn'>Daily dose: %s &rarr; %s %s/day</p>" % (
            _e("/".join(sorted({clinical.ug(x) for x in old_d}))), _e("/".join(sorted({clinical.ug(x) for x in new_d}))),
            UG))
    add("<p>%s</p>" % ("Changes: <br>" + "<br>".join(_e(x.strip()) for x in diff) if diff else "No change to the program."))
    limits = v.settings.get("limits") or {}
    if limits:
        add("<p>Hard limits: max rate %s %s/day, max %s %s in any 24 h, max bolus %s %s.</p>" % (
            clinical.ug(limits.get("max_rate_ng_per_day", 0)), UG, clinical.ug(limits.get("max_24h_ng", 0)), UG,
            clinical.ug(limits.get("max_bolus_ng", 0)), UG))

    add("<h2>Refill</h2>")
    refills = v.events(("refill", "fill"), visit_only=True)
    if not refills:
        add("<p>No refill at this visit.</p>")
    else:
        add("<table id='refill'><tr><th>When</th><th>What</th></tr>")
        for w, r in refills:
            add("<tr><td>%s</td><td>%s</td></tr>" % (_e(_when(w, r)), _e(clinical.event_text(r))))
        add("</table>")

    add("<h2>Alarms since the last visit</h2>")
    alarms = [(w, r) for w, r in v.events(("alarm", "alarms_restored", "ack"))]
    if not alarms:
        add("<p>None.</p>")
    else:
        add("<table id='alarms'><tr><th>When</th><th>Alarm</th></tr>")
        for w, r in alarms:
            add("<tr><td>%s</td><td>%s</td></tr>" % (_e(_when(w, r)), _e(clinical.event_text(r))))
        add("</table>")
    active = s.get("alarms") or []
    add("<p>Active now: %s</p>" % _e(clinical.alarm_words(active) or "none"))

    add("<h2>Delivered against programmed, per day</h2>")
    rows = v.daily()
    if rows:
        add("<table id='daily'><tr><th>Day</th><th class='num'>Programmed, %s</th><th class='num'>Delivered "
            "(from the log), %s</th></tr>" % (UG, UG))
        for day, prog, given in rows:
            add("<tr><td>%s</td><td class='num'>%.1f</td><td class='num'>%.1f</td></tr>" % (_e(day), prog, given))
        add("</table>")
    else:
        add("<p>The log cannot be placed on the pump's wall clock: see the chart.</p>")
    if chart_svg:
        start = chart_svg.find("<svg")
        add("<div id='chart'>%s</div>" % chart_svg[start:])
    add("<p>Delivered since the last fill: %s (%s), by strokes the rotor sensor confirmed.</p>" % (
        _e(ml(int(s.get("delivered_nl") or 0))), _e(drug(int(s.get("delivered_ng") or 0)))))

    add("<h2>Next refill</h2>")
    add("<p>Reservoir: %s (%s).</p>" % (_e(ml(int(s.get("reservoir_nl") or 0))), _e(drug(int(s.get("reservoir_ng") or 0)))))
    from tools.dashboard import projection
    add("<p id='next-refill'>Worst case (the schedule plus every patient bolus allowed): %s. Refill before the "
        "low level is reached.</p>" % _e(projection(s)))
    add("<p style='font-size:8pt;color:#666'>Research prototype, not a medical device. Generated by "
        "python -m tools.console report from the pump's own records.</p>")
    add("</body></html>")
    return "\n".join(parts)


def cmd_report(opts: argparse.Namespace, link: Any, ui: Any) -> int:
    from tools.commands import EXIT_OK, UserError, fetch_log
    from tools.keystore import write_private
    out = opts.output
    pdf = out.lower().endswith(".pdf")
    if pdf and chromium() is None:
        raise UserError("a PDF report needs Chromium, which is not installed (apt-get install chromium); "
                        "the HTML report needs nothing: give -o visit.html. Nothing was written")
    hello = link.hello(opts.timeout)
    settings = link.settings(opts.timeout)
    status = link.status(opts.timeout)
    export = fetch_log(link, ui)
    try:
        visit = Visit(hello, settings, status, list(export.records), opts.since, opts.patient)
    except ValueError as e:
        raise UserError("--since: %s" % e) from None
    chart = None
    try:
        from tools import plot
        chart = plot.render_svg(export.records, [status], 1000, 1250, "")
    except (ImportError, ValueError) as e:
        ui.note("warning: no chart (%s)" % e)
    text = render_html(visit, chart)
    if pdf:
        with tempfile.TemporaryDirectory(prefix="pump-report-") as scratch:
            page = os.path.join(scratch, "visit.html")
            with open(page, "w", encoding="utf-8") as f:
                f.write(text)
            try:
                html_to_pdf(page, out)
            except ReportError as e:
                raise UserError(str(e)) from None
    else:
        write_private(out, text.encode("utf-8"))
    ui.say("Visit report of pump %s written to %s" % (hello.get("dev"), out))
    ui.emit({"ok": True, "cmd": "report", "output": out, "records": len(export.records)})
    return EXIT_OK
