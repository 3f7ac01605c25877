# The console against the pump: the real firmware on the MicroPython unix port (the
# simulated Pico), its serial link on a real pseudo-terminal, keys provisioned into its
# flash before it boots. Most tests call the console's main() in this process (as
# `python -m tools.console ... --port PTY --keys DIR` would run); a few run the CLI as a
# subprocess with --sim, as a user does.
#
# One simulated pump (module scope) goes through a clinic visit in order: program from
# a file, clinician bolus, patient bolus, refill, alarms, clock, alarm levels, a replayed
# command, and finally the log export, which must hold what happened.
import io
import json
import os
import re
import stat
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from procs import firmware_processes, wait_until
from tools import console, logformat
from tools.commands import ml
from tools.keystore import KeyStore, keys_file
from tools.link import AuthFailed, Link, NotProvisioned, RequestTimeout
from tools.simpico import SimPico

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
CONSOLE = [sys.executable, "-m", "tools.console"]
SEED = 3
# generous: a loaded CI machine (two cores, the rest of the suite) may be slow to answer
TIMEOUT_S = 10.0


@pytest.fixture(autouse=True)
def _no_signal_handlers(monkeypatch):
    # main() makes SIGTERM/SIGHUP raise in the main thread: not inside pytest's process
    monkeypatch.setattr(console, "raise_on_termination", lambda: None)


class Pump:
    # A simulated Pico with fresh keys, and the console pointed at it.
    def __init__(self, tmp, **sim_options):
        self.keys_dir = str(tmp / "keys")
        self.store = KeyStore(self.keys_dir)
        self.flash = str(tmp / "flash")
        options = dict(speed=3600, seed=SEED, status_ms=900000, flash=self.flash)
        options.update(sim_options)
        self.sim = SimPico(**options)
        self.sim.keys = self.store.provision(self.sim.dev)
        self.sim.start()

    def run(self, capsys, monkeypatch, *argv, stdin="", keys=None):
        # The console's main() on this pump; (exit status, stdout, stderr).
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
        capsys.readouterr()
        rc = console.main(list(argv) + ["--port", self.sim.port, "--keys", keys or self.keys_dir,
                                        "--timeout", str(TIMEOUT_S)])
        out, err = capsys.readouterr()
        time.sleep(0.05)
        assert self.sim.poll() is None, "the firmware died: %s" % self.sim.last_words()
        assert "Traceback" not in err, err
        return rc, out, err

    def link(self, keys=None):
        return Link(self.sim.port, keys=keys or self.store)

    def ask(self, what):
        # link.status() or link.settings(); a firmware that died says why
        try:
            with self.link() as link:
                return getattr(link, what)(TIMEOUT_S)
        except RequestTimeout:
            time.sleep(0.2)
            if self.sim.poll() is not None:
                pytest.fail("the firmware died: %s" % self.sim.last_words())
            raise

    def status(self):
        return self.ask("status")

    def settings(self):
        return self.ask("settings")

    def alarms(self):
        return {a[0]: a for a in self.status()["alarms"]}

    def stop(self):
        self.sim.stop()


@pytest.fixture(scope="module")
def clinic(tmp_path_factory):
    # 2000 ug/mL at 300 ug/day on the bench; the visit's program file is for 2000 ug/mL too
    pump = Pump(tmp_path_factory.mktemp("clinic"), program="baclofen:2000:300")
    yield pump
    pump.stop()
    assert firmware_processes(pump.flash) == []


# ---- a clinic visit, in order ----------------------------------------------------------------

def test_info_names_the_pump_and_its_keys(clinic, capsys, monkeypatch):
    rc, out, _ = clinic.run(capsys, monkeypatch, "info")
    assert rc == 0
    assert "Pump %s on /dev/pts/" % clinic.sim.dev in out
    assert "Keys on pump    clinician, patient" in out
    assert "Key store       %s: clinician, patient" % clinic.store.path(clinic.sim.dev) in out
    rc, out, _ = clinic.run(capsys, monkeypatch, "info", "--json")
    body = json.loads(out)
    assert body["hello"]["dev"] == clinic.sim.dev and body["store_roles"] == ["clinician", "patient"]


def test_program_from_a_file_shows_the_difference_and_sends_it(clinic, capsys, monkeypatch):
    path = os.path.join(ROOT, "programs", "continuous-2000.toml")
    # asked, and answered no: nothing sent
    rc, out, err = clinic.run(capsys, monkeypatch, "program", path, stdin="n\n")
    assert rc == 4 and "Cancelled: nothing was sent" in err
    assert "checked for the simulated Pico's pump head" in out  # its device id says so
    assert "300 µg/day, all day, every day" in out and "600 µg/day, all day, every day" in out
    assert "Patient bolus          none  ->  25 µg over 15 min, lockout 180 min, at most 3 in 24 h" in out
    assert "Max in any 24 h        2500  ->  700 µg" in out
    assert clinic.settings()["limits"]["max_24h_ng"] == 2500000
    # answered yes: the program first, then the tighter limits
    # 300 -> 600 µg/day doubles the daily dose: the new dose must be typed again
    rc, out, err = clinic.run(capsys, monkeypatch, "program", path, "--board", "sim", stdin="y\n60\n")
    assert rc == 4 and "CAUTION: the daily dose changes from 300 to 600 µg/day (x2, +100 %), more than 20 %" in out
    assert "60 µg/day is not the new daily dose (600 µg/day)." in err and "Cancelled: nothing was sent" in err
    assert clinic.settings()["limits"]["max_24h_ng"] == 2500000
    rc, out, err = clinic.run(capsys, monkeypatch, "program", path, "--board", "sim", stdin="y\n600\n")
    assert rc == 0, err
    assert out.index("Program set: baclofen 2000 µg/mL") < out.index("Limits set: max rate 700 µg/day")
    settings = clinic.settings()
    assert settings["program"]["profiles"] == {"continuous": [[0, 600000]]} or \
        list(settings["program"]["profiles"].values()) == [[[0, 600000]]]
    assert settings["program"]["patient_bolus"]["dose_ng"] == 25000
    assert settings["limits"] == {"max_rate_ng_per_day": 700000, "max_24h_ng": 700000, "max_bolus_ng": 50000}
    assert clinic.status()["dose_ug_per_day"] == 600
    # the same file again: nothing to do
    rc, out, _ = clinic.run(capsys, monkeypatch, "program", path, "--board", "sim", "--json")
    assert rc == 0 and json.loads(out) == {"ok": True, "cmd": "program", "changed": False, "sent": []}


def test_clinician_bolus_runs_to_its_end_and_an_oversized_one_is_refused(clinic, capsys, monkeypatch):
    rc, out, err = clinic.run(capsys, monkeypatch, "bolus", "--dose-ug", "10", "--minutes", "30",
                              "--wait", "--yes")
    assert rc == 0, err
    assert "Clinician bolus started: 10 µg over 30 min, 20 strokes" in out  # 0.5 ug a stroke
    assert "Waiting for the bolus to end" in err and "bolus: clinician" in err
    assert "Bolus ended (done): 10 µg delivered, 20 of 20 strokes confirmed" in out
    rc, out, err = clinic.run(capsys, monkeypatch, "bolus", "--dose-ug", "60", "--minutes", "30", "--yes",
                              "--json")
    assert rc == 3
    body = json.loads(out)
    assert body["ok"] is False and body["code"] == "refused"
    assert "console: the pump refused `bolus`" in err and "max_bolus" in err


def test_patient_bolus_lockout_and_the_patient_key_on_a_clinician_command(clinic, capsys, monkeypatch, tmp_path):
    rc, out, err = clinic.run(capsys, monkeypatch, "bolus", "--patient", "--yes")
    assert rc == 0, err
    assert "Patient bolus started: 25 µg over 15 min, 50 strokes" in out
    rc, out, err = clinic.run(capsys, monkeypatch, "bolus", "--patient", "--yes")
    assert rc == 3
    assert "the pump refused `patient_bolus`: lockout" in err
    assert re.search(r"try again in (3 h|2 h \d+ min)$", err.strip()), err  # (however long the first took)
    # the patient's console holds the patient key only
    patient_keys = str(tmp_path / "patient-keys")
    assert console.main(["keys", "export", "--keys", clinic.keys_dir, "--dev", clinic.sim.dev, "--to",
                         patient_keys]) == 0
    rc, out, err = clinic.run(capsys, monkeypatch, "bolus", "--dose-ug", "5", "--minutes", "30", "--yes",
                              keys=patient_keys)
    assert rc == 2 and "holds only the patient key for pump %s, not the clinician key" % clinic.sim.dev in err
    # the patient key on a clinician command: the pump says no, and logs it
    with clinic.link(KeyStore(patient_keys)) as link:
        with pytest.raises(AuthFailed) as e:
            link.command("bolus", {"dose_ng": 5000, "duration_min": 30}, role="patient")
        assert e.value.reason == "wrong_role"
        assert "the patient role may not give `bolus`" in str(e.value)
    with clinic.link(KeyStore(str(tmp_path / "empty"))) as link:
        with pytest.raises(NotProvisioned, match="holds no keys for pump %s" % clinic.sim.dev):
            link.command("ack")


def test_refill_flags_a_residual_mismatch_and_refuses_two_concentrations(clinic, capsys, monkeypatch):
    expected = clinic.status()["reservoir_nl"]
    assert 19000000 < expected < 20000000
    rc, out, err = clinic.run(capsys, monkeypatch, "refill", "--withdrawn-ml", "15", "--volume-ml", "20",
                              "--conc", "2000", "--conc-again", "2000", "--yes")
    assert rc == 0, err
    shown = int(Decimal(re.search(r"The pump expects ([\d.]+) mL left", out).group(1)) * 1000000)
    assert expected - 1000000 < shown <= expected  # a few strokes later
    assert "a difference of more than %s from that is flagged" % ml(shown // 10) in out  # a tenth
    assert "beyond the tolerance" in out and "MISMATCH: the pump raised the refill_residual alarm" in out
    assert "refill_residual" in clinic.alarms()
    # the concentration entered twice, differently: refused, nothing changes
    before = clinic.status()["reservoir_nl"]
    rc, out, err = clinic.run(capsys, monkeypatch, "refill", "--withdrawn-ml", "20", "--volume-ml", "20",
                              "--conc", "2000", "--conc-again", "200", "--yes", "--json")
    assert rc == 3
    assert "they must agree" in err and "field conc_again" in err
    assert json.loads(out)["code"] == "refused"
    assert clinic.status()["reservoir_nl"] <= before


def test_refill_asks_for_every_value_when_not_given(clinic, capsys, monkeypatch):
    answers = "\n".join(["twenty", "19.95", "20", "2000", "2000", "y"]) + "\n"
    rc, out, err = clinic.run(capsys, monkeypatch, "refill", "--json", stdin=answers)
    assert rc == 0, err
    for prompt in ("Volume withdrawn (mL): ", "New fill volume (mL): ", "Concentration of the new drug (µg/mL): ",
                   "Concentration again, read from the label (µg/mL): ", "Send? [y/N]"):
        assert prompt in err
    assert "withdrawn volume 'twenty': expected a number of mL" in err  # asked again
    body = json.loads(out)
    assert body["ok"] and body["mismatch"] is False and body["refill"]["withdrawn_nl"] == 19950000
    assert body["refill"]["tolerance_nl"] == body["refill"]["expected_nl"] // 10
    assert 19900000 < clinic.status()["reservoir_nl"] <= 20000000


def test_silence_then_ack_clears_what_acknowledgement_clears(clinic, capsys, monkeypatch):
    alarms = clinic.alarms()
    assert "refill_residual" in alarms  # (the simulated pump starts with its clock set)
    # (5 simulated minutes are over in 83 ms here: the log shows the silence and its end)
    rc, out, err = clinic.run(capsys, monkeypatch, "silence", "--minutes", "5", "--role", "patient", "--json")
    assert rc == 0, err
    body = json.loads(out)
    assert body["ok"] and body["role"] == "patient" and body["minutes"] == 5
    rc, out, err = clinic.run(capsys, monkeypatch, "ack", "--json")
    assert rc == 0, err
    body = json.loads(out)
    assert body["role"] == "clinician" and "refill_residual" in body["cleared"]
    assert "refill_residual" not in clinic.alarms()


def test_clock_set_and_show(clinic, capsys, monkeypatch):
    rc, out, err = clinic.run(capsys, monkeypatch, "clock", "set", "2024-03-04T08:00")
    assert rc == 0, err
    assert "Pump clock set to 2024-03-04 08:00." in out
    assert clinic.settings()["clock"][0] == 8829  # days since 2000-01-01
    assert "clock_not_set" not in clinic.alarms()
    rc, out, _ = clinic.run(capsys, monkeypatch, "clock", "show")
    assert rc == 0 and "Pump clock: 2024-03-04 08:" in out
    rc, out, err = clinic.run(capsys, monkeypatch, "clock", "set", "yesterday")
    assert rc == 2 and "expected YYYY-MM-DDTHH:MM" in err


def test_alarm_levels_show_and_set(clinic, capsys, monkeypatch):
    rc, out, _ = clinic.run(capsys, monkeypatch, "alarm-settings")
    assert rc == 0 and "Low reservoir   2 mL" in out and "Low days left   7 days" in out
    rc, out, err = clinic.run(capsys, monkeypatch, "alarm-settings", "--low-ml", "3.5", "--low-days", "10")
    assert rc == 0, err
    assert clinic.settings()["alarm_settings"] == {"low_reservoir_nl": 3500000, "low_days": 10,
                                                   "empty_floor_nl": 0}


def test_a_captured_command_cannot_be_replayed(clinic):
    with clinic.link() as link:
        captured = []
        write = link.serial.write
        link.serial.write = lambda data: captured.append(bytes(data)) or write(data)
        assert link.command("ack").ok
        frame = captured[-1]
        body = json.loads(frame.split(b" ", 2)[2].rsplit(b" ", 1)[0])
        assert body["cmd"] == "ack" and body["auth"]["role"] == "clinician"
        link.serial.write = write
        # the very same bytes: the pump has seen that seq and does nothing
        assert link.status()["t"] == "status"  # the session moves on
        link.serial.write(frame)
        late = link.wait_for(lambda b: b.get("t") == "result" and b.get("cmd") == "ack", 3)
        assert late is not None and late["code"] == "out_of_order", late
        # the same command in a fresh frame: its counter is stale
        again = link.request(body)
        assert again.result["code"] == "auth_failed" and again.result["reason"] == "stale_counter"
    # and in a new session, from another console: still stale
    with clinic.link() as other:
        replay = other.request(body)
        assert replay.result["code"] == "auth_failed" and replay.result["reason"] == "stale_counter"
        assert other.command("ack").ok  # the real console goes on


def test_log_export_as_jsonl_and_csv_holds_the_visit(clinic, capsys, monkeypatch, tmp_path):
    out_file = tmp_path / "log.jsonl"
    rc, out, err = clinic.run(capsys, monkeypatch, "log", "export", "--format", "jsonl", "-o", str(out_file))
    assert rc == 0, err
    assert stat.S_IMODE(os.stat(out_file).st_mode) == 0o600
    assert "log: " in err and "records written to %s" % out_file in err
    records = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert all(r["t"] == "log" for r in records)
    evs = [r["ev"] for r in records]
    for ev in ("power_up", "program", "limits", "bolus_start", "bolus_end", "refused", "refill", "alarm", "ack",
               "silence", "silence_end", "clock", "alarm_settings", "auth_failed"):
        assert ev in evs, ev
    assert evs[0] == "power_up"
    refills = [r for r in records if r["ev"] == "refill"]
    assert [r["mismatch"] for r in refills] == [True, False]
    reasons = {r["reason"] for r in records if r["ev"] == "auth_failed"}
    assert {"wrong_role", "stale_counter"} <= reasons
    # CSV, on standard output: the same records, one row each
    rc, out, err = clinic.run(capsys, monkeypatch, "log", "export")
    assert rc == 0, err
    rows = logformat.read_csv(out)
    assert len(rows) >= len(records)  # events may have happened since
    assert [r["ev"] for r in rows[:len(records)]] == evs
    bolus_end = next(r for r in rows if r["ev"] == "bolus_end")
    assert bolus_end["end"] == "done" and bolus_end["boot"] == "1"


def test_plot_of_the_log(clinic, capsys, monkeypatch, tmp_path):
    pytest.importorskip("tools.plot", reason="tools/plot.py is not in this checkout yet")
    png = tmp_path / "pump.png"
    rc, out, err = clinic.run(capsys, monkeypatch, "plot", "-o", str(png))
    assert rc == 0, err
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# ---- an alarm from a fault ----------------------------------------------------------------------

def test_an_occlusion_alarm_is_silenced_acknowledged_and_clears(tmp_path, capsys, monkeypatch):
    # blocked from 3 simulated minutes to 1 hour; 20 simulated minutes a real second
    pump = Pump(tmp_path, speed=1200, status_ms=60000, faults=["occlusion:0.05:1"])
    try:
        wait_until(lambda: "occlusion" in pump.alarms(), 10, "the occlusion alarm")
        status = pump.status()
        assert status["state"] == "stopped" and status["stop_reason"] == "occlusion"
        rc, out, err = pump.run(capsys, monkeypatch, "status")
        assert rc == 0 and "occlusion" in out
        rc, out, err = pump.run(capsys, monkeypatch, "silence", "--minutes", "15")
        assert rc == 0, err
        rc, out, err = pump.run(capsys, monkeypatch, "ack")
        assert rc == 0, err
        assert "Still active: " in out and "occlusion (high, acknowledged" in out
        assert pump.alarms()["occlusion"][2] is True  # acknowledged, condition still there
        wait_until(lambda: "occlusion" not in pump.alarms(), 15, "the occlusion clears once the line is open")
        assert pump.status()["state"] == "running"
    finally:
        pump.stop()


# ---- a pump without keys, a console with the wrong ones -------------------------------------

def test_a_pump_without_keys_says_so_and_locks_out_guessing(tmp_path, capsys, monkeypatch):
    # real time: the backoff's lockouts (1 s, 2 s, ...) are in the pump's time
    pump = Pump(tmp_path, seed=6, speed=1, status_ms=60000)
    try:
        (tmp_path / "flash" / "keys").unlink()  # the pump booted with keys; take them away
        pump.sim.stop()
        pump.sim = SimPico(speed=1, seed=6, status_ms=60000, flash=pump.flash)
        pump.sim.start()
        rc, out, err = pump.run(capsys, monkeypatch, "info")
        assert rc == 0 and "Keys on pump    none: provision the pump" in out
        rc, out, err = pump.run(capsys, monkeypatch, "ack")
        assert rc == 3 and "the pump holds no clinician key. Provision it" in err
        for _ in range(2):
            pump.run(capsys, monkeypatch, "ack")
        rc, out, err = pump.run(capsys, monkeypatch, "ack", "--json")
        assert rc == 3 and "locked out after repeated authentication failures; try again in" in err
        assert json.loads(out)["reason"] == "locked_out"
        assert pump.status()["auth"]["locked_ms"] > 0  # reading still works
    finally:
        pump.stop()


# ---- as a user runs it: subprocesses, --sim ---------------------------------------------------

def cli(*args, stdin=None, timeout=60):
    return subprocess.run(CONSOLE + list(args), cwd=ROOT, input=stdin, capture_output=True, text=True,
                          timeout=timeout)


def test_every_command_works_on_sim_out_of_the_box(tmp_path):
    keys = tmp_path / "keys"
    flash = tmp_path / "flash"
    proc = cli("provision", "--sim", "--flash", str(flash), "--keys", str(keys), "--seed", "4", "--yes")
    assert proc.returncode == 0, proc.stderr
    dev = (flash / ".sim-device-id").read_text().strip()
    assert re.fullmatch(r"sim-4-[0-9a-f]{6}", dev)  # unique: two simulated pumps never share keys
    assert "Simulated pump %s provisioned with clinician and patient keys" % dev in proc.stdout
    assert stat.S_IMODE(os.stat(flash / "keys").st_mode) == 0o600
    stored = KeyStore(str(keys)).load(dev)
    assert (flash / "keys").read_bytes() == keys_file(dev, stored.keys)
    # a later run on the same flash keeps those keys, and signs with them
    proc = cli("bolus", "--sim", "--flash", str(flash), "--keys", str(keys), "--seed", "4",
               "--dose-ug", "12.5", "--minutes", "30", "--yes", "--json")
    assert proc.returncode == 0, proc.stderr
    body = json.loads(proc.stdout)
    assert body["ok"] and body["bolus_start"]["requested_ng"] == 12500
    assert KeyStore(str(keys)).load(dev).keys == stored.keys
    # without --keys: a scratch store for the run, fresh keys, nothing left behind
    proc = cli("ack", "--sim", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["ok"] is True
    assert firmware_processes(str(flash)) == []


def test_user_errors_are_messages_not_tracebacks(tmp_path):
    proc = cli("bolus", "--port", "/dev/no-such-pump", "--dose-ug", "5", "--minutes", "30", "--yes")
    assert proc.returncode == 2 and "no-such-pump" in proc.stderr and "Traceback" not in proc.stderr
    proc = cli("refill", "--sim", "--keys", str(tmp_path / "k"))  # no answers on stdin
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "standard input is closed; give --withdrawn-ml" in proc.stderr


# ---- provisioning a Pico with mpremote ----------------------------------------------------------

def test_provision_a_pico_copies_the_keys_file_with_mpremote(tmp_path, repl):
    device, port = repl
    keys = tmp_path / "keys"
    proc = cli("provision", "--port", port, "--keys", str(keys), "--dev", "e6614c311b7a2b2f", "--resume",
               "--no-reset", "--yes", timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    entry = KeyStore(str(keys)).load("e6614c311b7a2b2f")
    assert entry.roles == ["clinician", "patient"]
    assert (device / "data" / "keys").read_bytes() == keys_file("e6614c311b7a2b2f", entry.keys)
    assert "Keys written to the Pico (:data/keys)" in proc.stdout


# ---- a new pump: first fill, program, priming, titration ----------------------------------------

@pytest.fixture(scope="module")
def implant(tmp_path_factory):
    # a fresh simulated Pico with no program and no drug (SimPico(program=""): nothing set up
    # on first boot), as a pump is before its first fill
    pump = Pump(tmp_path_factory.mktemp("implant"), program="", seed=8)
    yield pump
    pump.stop()
    assert firmware_processes(pump.flash) == []


def test_fill_fills_an_empty_pump_once_then_points_to_refill(implant, capsys, monkeypatch):
    status = implant.status()
    assert status["conc_ug_per_ml"] == 0 and status["reservoir_nl"] == 0 and status["drug"] is None
    rc, out, err = implant.run(capsys, monkeypatch, "fill", "--json", stdin="18.5\n500\n500\ny\n")
    assert rc == 0, err
    assert "First fill of pump %s: its reservoir is empty (no program yet)." % implant.sim.dev in err
    assert "First fill: 18.5 mL of 500 µg/mL (9250 µg of drug). Send? [y/N]" in err
    body = json.loads(out)
    assert body["args"] == {"volume_nl": 18500000, "conc_ug_per_ml": 500}
    assert body["fill"]["volume_nl"] == 18500000 and "bridge_nl" not in body["fill"]
    status = implant.status()
    assert status["reservoir_nl"] == 18500000 and status["conc_ug_per_ml"] == 500
    # a second fill: the console sends nothing and names the refill
    rc, out, err = implant.run(capsys, monkeypatch, "fill", "--volume-ml", "20", "--conc", "500",
                               "--conc-again", "500", "--yes", "--json")
    assert rc == 2 and "has been filled already: 18.5 mL of 500 µg/mL" in err
    assert "python -m tools.console refill" in err and json.loads(out)["ok"] is False
    assert implant.status()["reservoir_nl"] == 18500000


def test_prime_shows_the_line_and_follows_the_priming_bolus(implant, capsys, monkeypatch):
    path = os.path.join(ROOT, "programs", "continuous-500.toml")  # dead volumes 20 + 150 uL
    rc, out, err = implant.run(capsys, monkeypatch, "program", path, "--yes")
    assert rc == 0, err
    rc, out, err = implant.run(capsys, monkeypatch, "prime", "--wait", "--yes")
    assert rc == 0, err
    assert "Priming of pump %s (baclofen, 500 µg/mL): the pump's tubing and the catheter" % implant.sim.dev in out
    assert "  Pump dead volume       20 µL\n  Catheter dead volume   150 µL\n" in out
    assert "  To prime               170 µL at 600 µL/h: about 17 min" in out
    # 680 strokes of 250 nL, less a basal stroke still turning when priming starts (it
    # pushes the emptied line too): which one it is depends on the moment
    strokes = 680 if "Priming started: 170 µL, 680 strokes" in out else 679
    assert "Priming started: 170 µL, %d strokes over 17 min" % strokes in out
    assert "Waiting for the priming to end" in err and "priming: prime: " in err
    assert "Priming ended (done): %d of %d strokes confirmed" % (strokes, strokes) in out
    with implant.link() as link:
        records = link.log_export().records
    start = [r for r in records if r["ev"] == "bolus_start"]
    assert [(r["kind"], r["volume_nl"], r["strokes"]) for r in start] == [("prime", 170000, strokes)]
    end = next(r for r in records if r["ev"] == "bolus_end")
    assert (end["kind"], end["end"], end["delivered_ng"]) == ("prime", "done", 0)  # priming fluid is no dose


def test_titrate_shows_the_doses_and_takes_effect_at_its_time(implant, capsys, monkeypatch):
    rc, out, err = implant.run(capsys, monkeypatch, "titrate", "--percent", "-20", "--in-min", "60", "--yes",
                               "--json")
    assert rc == 0, err
    assert "Titration of pump %s (baclofen, 500 µg/mL): -20 %% on every step, in 1 h" % implant.sim.dev in err
    assert "  Daily dose      200 µg/day  ->  160 µg/day" in err
    assert "Titration programmed: it takes effect in 1 h." in err
    body = json.loads(out)
    assert body["args"] == {"percent": -20, "in_min": 60}
    assert body["titration"]["percent"] == -20 and body["profiles_new"] == {"all": [[0, 160000]]}
    status = implant.status()
    assert status["rate_ng_per_day"] == 200000 and 0 < status["titration_in_ms"] <= 3600000
    # an hour of pump time is a second here
    status = wait_until(lambda: (lambda s: s if s["rate_ng_per_day"] == 160000 else None)(implant.status()),
                        10, "the titrated rate")
    assert status["dose_ug_per_day"] == 160 and status["titration_in_ms"] is None
    assert implant.settings()["program"]["profiles"] == body["profiles_new"]
