# One simulated pump kept open for a visit, as a clinic would run it: `console session
# --sim --keys DIR` holds it (with the key store), a `watch` in a real terminal (tmux)
# and single commands share its port, and the plot and the visit report are made from
# it, the PNG read back and the report looked at in a headless Chromium.
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import uuid

import pytest

from procs import firmware_processes, wait_until
from tools import report
from tools.port import PortError, open_serial

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONSOLE = [sys.executable, "-m", "tools.console"]


class Clinic:
    def __init__(self, tmp):
        self.keys = str(tmp / "keys")
        self.flash = str(tmp / "flash")
        self.proc = subprocess.Popen(CONSOLE + ["session", "--sim", "--keys", self.keys, "--flash", self.flash,
                                                "--speed", "3600", "--status-ms", "900000"],
                                     cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.port = self.proc.stdout.readline().strip()
        assert self.port.startswith("/dev/pts/"), self.proc.stderr.read()

    def run(self, *args, stdin=None, timeout=60):
        proc = subprocess.run(CONSOLE + list(args) + ["--port", self.port, "--keys", self.keys, "--timeout", "10"],
                              cwd=ROOT, input=stdin, capture_output=True, text=True, timeout=timeout)
        assert "Traceback" not in proc.stderr, proc.stderr
        return proc

    def stop(self):
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(15)
        finally:
            self.proc.kill()


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    c = Clinic(tmp_path_factory.mktemp("session"))
    yield c
    c.stop()
    assert c.proc.returncode == 0
    assert "session for" in c.proc.stderr.read()
    assert firmware_processes(c.flash) == []


def test_the_port_is_exclusive_and_a_second_session_is_told_where_the_first_is(clinic):
    with pytest.raises(PortError) as e:
        open_serial(clinic.port).close()
    assert "is in use by another program" in str(e.value)
    proc = clinic.run("session")
    assert proc.returncode == 2
    assert "a session already serves %s: use it" % clinic.port in proc.stderr


def test_watch_and_commands_share_the_session(clinic):
    watch = subprocess.Popen(CONSOLE + ["watch", "--port", clinic.port, "--json"], cwd=ROOT,
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = json.loads(watch.stdout.readline())
        assert first["t"] in ("status", "event")
        # while the watch runs, a command goes through the same port
        proc = clinic.run("bolus", "--dose-ug", "10", "--minutes", "30", "--yes", "--json")
        assert proc.returncode == 0, proc.stderr
        assert json.loads(proc.stdout)["bolus_start"]["requested_ng"] == 10000
        seen = []

        def bolus_seen():
            seen.append(json.loads(watch.stdout.readline()))
            return seen[-1].get("ev") == "bolus_start"
        wait_until(bolus_seen, 20, "the watch sees the bolus the other console gave")
        assert seen[-1]["kind"] == "clinician"
        # and the commands' answers do not leak into the watch (they go to who asked)
        assert not any(b.get("t") == "result" for b in seen)
    finally:
        watch.send_signal(signal.SIGINT)
        out, _ = watch.communicate(timeout=15)
    assert watch.returncode == 0
    assert json.loads(out.splitlines()[-1])["ending"] == "stopped by the user"


class Tmux:
    def __init__(self):
        self.socket = "console-test-" + uuid.uuid4().hex[:8]

    def __call__(self, *args):
        return subprocess.run(["tmux", "-L", self.socket] + list(args), capture_output=True, text=True, timeout=10)

    def screen(self):
        return self("capture-pane", "-p", "-t", "live").stdout

    def kill(self):
        self("kill-server")


def test_the_live_dashboard_shows_the_wall_clock_its_rows_and_a_paused_pump(clinic, tmp_path):
    if shutil.which("tmux") is None:
        pytest.skip("tmux is not installed (apt-get install tmux): the live view needs a real terminal")
    done = tmp_path / "done"
    command = "%s -m tools.console watch --port %s; echo $? > %s" % (sys.executable, clinic.port, done)
    tmux = Tmux()
    try:
        started = tmux("-f", "/dev/null", "new-session", "-d", "-s", "live", "-x", "110", "-y", "40", "-c", ROOT,
                       command)
        assert started.returncode == 0, started.stderr
        wait_until(lambda: re.search(r"Clock +Mon 2024-01-0\d \d\d:\d\d:\d\d", tmux.screen()), 15,
                   "the dashboard shows the pump's wall clock")
        screen = tmux.screen()
        assert "Pump on %s  (through the session that holds it)" % clinic.port in screen
        for label in ("Pump            running", "Program         baclofen  500 µg/mL  200 µg/day",
                      "Rate            0.4 mL/day  200 µg/day", "Refill          low level in ", "Alarms "):
            assert label in screen, (label, screen)
        # paused from another console while the dashboard runs: it says so
        proc = clinic.run("pause")
        assert proc.returncode == 0, proc.stderr
        wait_until(lambda: "PAUSED by the clinician: the keep-open rate runs" in tmux.screen(), 15,
                   "the dashboard shows the pause")
        assert "paused by the clinician: keep-open rate 6 µL/day" in tmux.screen()  # the event, in units
        assert clinic.run("resume").returncode == 0
        wait_until(lambda: "Pump            running" in tmux.screen(), 15, "running again")
        tmux("send-keys", "-t", "live", "q")
        wait_until(lambda: done.exists() and done.read_text().strip(), 10, "the console exits")
        assert done.read_text().strip() == "0"
    finally:
        tmux.kill()


def _png_meta(path):
    from PIL import Image
    img = Image.open(path)
    return img, json.loads(img.text["pump-plot"])


def _pixels(img, box, colour):
    # how many pixels inside box are (close to) colour
    want = tuple(int(colour[i:i + 2], 16) for i in (1, 3, 5))
    x0, y0, x1, y1 = box
    crop = img.convert("RGB").crop((x0, y0, x1, y1))
    data = crop.tobytes()
    return sum(1 for k in range(0, len(data), 3) if all(abs(data[k + i] - want[i]) <= 40 for i in range(3)))


def test_the_plot_read_back_has_its_lines_a_basal_scale_and_is_private(clinic, tmp_path):
    png = tmp_path / "pump.png"
    proc = clinic.run("plot", "-o", str(png))
    assert proc.returncode == 0, proc.stderr
    assert oct(os.stat(png).st_mode & 0o777) == "0o600"
    img, meta = _png_meta(png)
    dose = meta["panels"]["dose"]
    lines = {ln["label"]: ln for ln in dose["lines"]}
    assert "programmed basal" in lines and any(k.startswith("delivered basal") for k in lines)
    delivered = next(v for k, v in lines.items() if k.startswith("delivered basal"))
    assert delivered["points"] >= 2 and _pixels(img, dose["box"], delivered["colour"]) > 50
    # the scale is the basal's (200 µg/day), not the 10 µg bolus's spike
    assert 200 < dose["ylim"][1] <= 300
    reservoir = meta["panels"]["reservoir"]
    assert any(ln["points"] >= 2 and ln["label"].startswith("volume left") for ln in reservoir["lines"])
    boluses = meta["panels"]["boluses"]
    assert any("clinician 10 µg" in label["text"] for label in meta["labels"] if label["panel"] == "boluses")
    assert boluses["ylim"][1] >= 10
    # labels do not overlap each other
    boxes = [lab["box"] for lab in meta["labels"]]
    for i, a in enumerate(boxes):
        for b in boxes[i + 1:]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1], (a, b, meta["labels"])
    assert re.search(r"^baclofen 500 µg/mL: 2024-01-01 \d\d:\d\d to 2024-01-0\d \d\d:\d\d, \d+ log records, "
                     r"1 status frame$", meta["title"]), meta["title"]


CHECK = """<script>
(function () {
  var bad = [];
  document.querySelectorAll('td, th, p, h1, h2').forEach(function (el) {
    if (el.scrollWidth > el.clientWidth + 1) bad.push(el.tagName + ': ' + el.textContent.slice(0, 60));
  });
  var doc = document.documentElement;
  if (doc.scrollWidth > doc.clientWidth + 1) bad.push('page wider than the window');
  var svg = document.querySelector('#chart svg');
  var r = svg ? svg.getBoundingClientRect() : null;
  var out = document.createElement('pre');
  out.id = 'check';
  out.textContent = JSON.stringify({overflow: bad, chart: r ? [r.width, r.height] : null,
                                    sections: Array.from(document.querySelectorAll('h2')).map(function (h) { return h.textContent; })});
  document.body.appendChild(out);
})();
</script>"""


def test_the_visit_report_renders_in_chromium_with_its_chart_and_nothing_overflows(clinic, tmp_path):
    # the visit: a refill, then the report
    proc = clinic.run("refill", "--withdrawn-ml", "19.9", "--volume-ml", "20", "--conc", "500", "--conc-again",
                      "500", "--yes")
    assert proc.returncode == 0, proc.stderr
    page = tmp_path / "visit.html"
    proc = clinic.run("report", "-o", str(page), "--patient", "Test Patient 01")
    assert proc.returncode == 0, proc.stderr
    assert oct(os.stat(page).st_mode & 0o777) == "0o600"
    text = page.read_text()
    for part in ("Test Patient 01", "refill: withdrawn 19.9 mL", "Next refill", "Worst case", "<svg"):
        assert part in text, part
    if report.chromium() is None:
        pytest.skip("Chromium is not installed (apt-get install chromium; `make test` installs it as root): the "
                    "report was not looked at in a browser")
    checked = tmp_path / "checked.html"
    checked.write_text(text.replace("</body>", CHECK + "</body>"))
    proc = report.run_chromium(["--window-size=900,1200", "--dump-dom", "file://" + str(checked)], str(tmp_path))
    found = re.search(r'<pre id="check">(.*?)</pre>', proc.stdout)
    assert found, proc.stderr[-500:]
    result = json.loads(found.group(1).replace("&quot;", '"').replace("&amp;", "&"))
    assert result["overflow"] == []
    assert result["chart"] and result["chart"][0] > 400 and result["chart"][1] > 400
    assert result["sections"][:3] == ["Program", "Refill", "Alarms since the last visit"]
    # and printed: a PDF, through the console
    pdf = tmp_path / "visit.pdf"
    proc = clinic.run("report", "-o", str(pdf))
    assert proc.returncode == 0, proc.stderr
    assert pdf.read_bytes()[:5] == b"%PDF-"
