# The console's command side without a pump: the host key store (permissions, atomic
# writes, the counter rule), signing checked by the pump's own verifier, error messages,
# argument parsing, numbers, program plans and diffs, and the log's CSV/JSONL files.
import io
import json
import os
import stat

import pytest

from pump import auth, wire
from tools import commands, console, logformat
from tools.commands import Ui, UserError
from tools.keystore import KeyStore, KeyStoreError, NoKey, fresh_keys, keys_file
from tools.link import AuthFailed, CommandError, Link, NotProvisioned, Refused, Reply, explain, wait_text

DEV = "sim-7"
# the role check's argument of pump.auth.Auth.check: truthy (and naming every role) when
# the role may give the command, falsy when not
ALLOWED = ("clinician", "patient")
NOT_ALLOWED = ()


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# ---- the key store ------------------------------------------------------------------------

def test_provision_writes_private_files_with_fresh_keys(tmp_path):
    store = KeyStore(str(tmp_path / "keys"))
    keys = store.provision(DEV, ["clinician", "patient"])
    assert set(keys) == {"clinician", "patient"}
    assert all(len(k) == 32 for k in keys.values()) and keys["clinician"] != keys["patient"]
    assert mode(store.directory) == 0o700
    assert mode(store.path(DEV)) == 0o600
    body = json.loads(open(store.path(DEV)).read())
    assert body["dev"] == DEV and body["ctr"] == {"clinician": 0, "patient": 0}
    assert body["keys"]["clinician"] == keys["clinician"].hex()
    # a second pump, and a second provisioning that replaces both keys
    again = store.provision(DEV, ["patient"])
    assert again["patient"] != keys["patient"]
    assert store.load(DEV).roles == ["patient"]
    assert store.devices() == [DEV]
    # the pump's file is the firmware's own frame, and the firmware reads it back
    parsed, problem = auth.parse_keys(keys_file(DEV, keys), DEV)
    assert problem is None and parsed == keys
    assert auth.parse_keys(keys_file(DEV, keys), "sim-8")[0] == {}


def test_fresh_keys_differ_every_time():
    seen = {fresh_keys(["clinician"])["clinician"] for _ in range(50)}
    assert len(seen) == 50


def test_a_store_file_open_to_others_is_refused_with_what_to_do(tmp_path):
    store = KeyStore(str(tmp_path))
    store.provision(DEV)
    os.chmod(store.path(DEV), 0o644)
    with pytest.raises(KeyStoreError) as e:
        store.key(DEV, "clinician")
    assert "chmod 600" in str(e.value) and "provision" in str(e.value)


def test_a_damaged_store_file_says_so(tmp_path):
    store = KeyStore(str(tmp_path))
    store.provision(DEV)
    with open(store.path(DEV), "w") as f:
        f.write('{"format": 1, "dev": "sim-7", "keys": {"clinician": "abcd"}}')
    with pytest.raises(KeyStoreError, match="clinician key is not 64 hex digits"):
        store.load(DEV)


def test_device_ids_cannot_escape_the_store(tmp_path):
    store = KeyStore(str(tmp_path))
    for dev in ("../evil", "a/b", "", ".hidden", "x" * 65):
        with pytest.raises(KeyStoreError):
            store.path(dev)


def test_writes_are_atomic_a_failed_write_leaves_the_old_file(tmp_path, monkeypatch):
    store = KeyStore(str(tmp_path))
    store.provision(DEV)
    before = open(store.path(DEV), "rb").read()

    def broken(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(OSError):
        store.next_counter(DEV, "clinician")
    monkeypatch.undo()
    assert open(store.path(DEV), "rb").read() == before
    assert sorted(os.listdir(tmp_path)) == [DEV + ".json", DEV + ".lock"]  # no temporary left


def test_next_counter_is_max_of_store_and_pump_plus_one_and_saved_first(tmp_path):
    store = KeyStore(str(tmp_path))
    store.provision(DEV)
    assert store.next_counter(DEV, "clinician", 0) == 1
    assert store.next_counter(DEV, "clinician", 0) == 2
    assert store.load(DEV).ctr["clinician"] == 2  # on disk before anyone uses it
    assert store.next_counter(DEV, "clinician", 40) == 41  # the pump is ahead
    assert store.next_counter(DEV, "clinician", 5) == 42  # the store is ahead
    assert store.next_counter(DEV, "patient", 0) == 1  # per role
    # provisioning again keeps the counters: they must never go back
    store.provision(DEV)
    assert store.next_counter(DEV, "clinician", 0) == 43


def test_counter_runs_out_at_the_pumps_limit(tmp_path):
    store = KeyStore(str(tmp_path))
    store.provision(DEV)
    with pytest.raises(KeyStoreError, match="used up"):
        store.next_counter(DEV, "clinician", auth.CTR_MAX)


def test_no_key_tells_the_user_to_provision(tmp_path):
    store = KeyStore(str(tmp_path))
    with pytest.raises(NoKey) as e:
        store.sign(DEV, "clinician", "ack", {})
    assert "holds no keys for pump sim-7" in str(e.value) and "provision" in str(e.value)
    store.provision(DEV, ["patient"])
    with pytest.raises(NoKey) as e:
        store.sign(DEV, "clinician", "ack", {})
    assert "only the patient key" in str(e.value)


def test_export_gives_another_console_only_the_patient_key(tmp_path):
    store = KeyStore(str(tmp_path / "clinic"))
    keys = store.provision(DEV)
    store.next_counter(DEV, "patient", 9)
    path = store.export(DEV, ["patient"], str(tmp_path / "patient"))
    other = KeyStore(str(tmp_path / "patient"))
    entry = other.load(DEV)
    assert path == other.path(DEV) and mode(path) == 0o600
    assert entry.keys == {"patient": keys["patient"]} and entry.ctr["patient"] == 10


# ---- signing, checked by the pump's own verifier --------------------------------------------

def test_signatures_are_the_ones_the_pump_checks(tmp_path):
    store = KeyStore(str(tmp_path))
    keys = store.provision(DEV)
    pump = auth.Auth()
    pump.keys = dict(keys)
    args = {"dose_ng": 50000, "duration_min": 30}
    a = store.sign(DEV, "clinician", "bolus", args)
    assert a["mac"] == auth.mac_hex(keys["clinician"], DEV, "clinician", a["ctr"], "bolus", args)
    assert pump.check(0, DEV, a, "bolus", args, ALLOWED) is None
    # the same frame again: stale; altered arguments, another pump, another role: refused
    assert pump.check(0, DEV, a, "bolus", args, ALLOWED) == "stale_counter"
    b = store.sign(DEV, "clinician", "bolus", args)
    assert pump.check(0, DEV, b, "bolus", {"dose_ng": 500000, "duration_min": 30}, ALLOWED) == "bad_mac"
    pump.failures = 0
    c = store.sign(DEV, "clinician", "bolus", args)
    assert pump.check(0, "sim-8", c, "bolus", args, ALLOWED) == "bad_mac"
    pump.failures = 0
    d = store.sign(DEV, "patient", "bolus", args)
    assert pump.check(0, DEV, d, "bolus", args, NOT_ALLOWED) == "wrong_role"


class ScriptedLink(Link):
    # A Link whose frames go to a function instead of a port: the pump's side is the
    # firmware's real verifier, so what the console sends is checked as a pump checks it.
    def __init__(self, store, answer):
        self.port = "/dev/fake"
        self.keys = store
        self.session = None
        self.pump_ctr = {}
        self.sent = []
        self.answer = answer

    def _exchange(self, body, timeout_s, on_frame=None, idle_timeout=False):
        self.sent.append(body)
        result = self.answer(body)
        result.setdefault("t", "result")
        result.setdefault("cmd", body["cmd"])
        return Reply(result, [wire.Frame(0, result)])


def pump_answers(keys, ctr=None, store=None, seen=None):
    pump = auth.Auth()
    pump.keys = dict(keys)
    pump.ctr.update(ctr or {})

    def answer(body):
        if body["cmd"] == "hello":
            return {"ok": True, "code": "ok", "dev": DEV, "roles": sorted(keys), "ctr": dict(pump.ctr)}
        if seen is not None and store is not None:
            # what the store holds when the frame leaves the console
            seen.append(store.load(DEV).ctr[body["auth"]["role"]])
        why = pump.check(0, DEV, body["auth"], body["cmd"], body["args"], ALLOWED)
        if why:
            return {"ok": False, "code": "auth_failed", "reason": why}
        return {"ok": True, "code": "ok"}
    return answer, pump


def test_command_signs_with_a_counter_saved_before_sending(tmp_path):
    store = KeyStore(str(tmp_path))
    keys = store.provision(DEV)
    seen = []
    answer, pump = pump_answers(keys, {"clinician": 17}, store, seen)
    link = ScriptedLink(store, answer)
    reply = link.command("silence", {"minutes": 5}, "clinician")
    assert reply.ok
    assert [b["cmd"] for b in link.sent] == ["hello", "silence"]  # a session first
    assert link.sent[1]["auth"]["ctr"] == 18  # max(store 0, pump 17) + 1
    assert seen == [18]  # saved before it was sent
    link.command("ack", {}, "clinician")
    assert pump.ctr["clinician"] == 19 == store.load(DEV).ctr["clinician"]


def test_a_pump_ahead_of_the_store_costs_one_stale_counter_and_a_new_signature(tmp_path):
    store = KeyStore(str(tmp_path))
    keys = store.provision(DEV)
    answer, pump = pump_answers(keys)
    link = ScriptedLink(store, answer)
    link.hello()
    pump.ctr["clinician"] = 50  # another console used the pump meanwhile
    assert link.command("ack", {}, "clinician").ok
    cmds = [(b["cmd"], b.get("auth", {}).get("ctr")) for b in link.sent]
    assert cmds == [("hello", None), ("ack", 1), ("hello", None), ("ack", 51)]


def test_command_errors_say_what_to_do(tmp_path):
    store = KeyStore(str(tmp_path))
    link = ScriptedLink(store, lambda body: {"ok": True, "code": "ok", "dev": DEV, "roles": [], "ctr": {}})
    with pytest.raises(NotProvisioned, match="provision"):
        link.command("ack", {}, "clinician")
    keys = store.provision(DEV)
    answer, _ = pump_answers({"clinician": keys["clinician"]})
    link = ScriptedLink(store, answer)
    with pytest.raises(NotProvisioned, match="holds no patient key"):
        link.command("patient_bolus", {}, "patient")


def test_explain_turns_every_refusal_into_a_message():
    e = explain({"cmd": "bolus", "code": "auth_failed", "reason": "wrong_role"}, "patient")
    assert isinstance(e, AuthFailed) and "patient role may not give `bolus`" in str(e)
    assert "--role clinician" in str(e)
    e = explain({"cmd": "ack", "code": "auth_failed", "reason": "locked_out", "retry_in_ms": 4000})
    assert "locked out" in str(e) and "try again in 4 s" in str(e)
    e = explain({"cmd": "ack", "code": "auth_failed", "reason": "bad_mac"}, "clinician")
    assert "Provision the pump again" in str(e)
    e = explain({"cmd": "bolus", "code": "auth_failed", "reason": "stale_counter"}, "clinician")
    assert "replayed" in str(e) and e.reason == "stale_counter"
    e = explain({"cmd": "patient_bolus", "code": "refused", "reason": "lockout: 3 min since the last",
                 "limit": "lockout", "retry_in_ms": 3 * 3600000 + 20 * 60000})
    assert isinstance(e, Refused)
    assert str(e) == ("the pump refused `patient_bolus`: lockout: 3 min since the last; hard limit lockout; "
                      "try again in 3 h 20 min")
    e = explain({"cmd": "refill", "code": "refused", "reason": "they must agree", "field": "conc_again"})
    assert "field conc_again" in str(e)
    e = explain({"cmd": "bolus", "code": "bad_request", "reason": "missing argument", "field": "dose_ng"})
    assert type(e) is CommandError and "(field dose_ng)" in str(e)
    assert "older than this console" in str(explain({"cmd": "settings", "code": "unknown_command"}))


def test_wait_text_rounds_up():
    assert [wait_text(ms) for ms in (0, 1, 999, 1000, 59001, 60000, 61000, 3600000, 3660001, 2 * 86400000 + 3600000)] == [
        "0 s", "1 s", "1 s", "1 s", "1 min", "1 min", "2 min", "1 h", "1 h 2 min", "2 d 1 h"]


# ---- numbers as typed -------------------------------------------------------------------------

def test_amounts_are_exact_and_errors_say_what_is_allowed():
    assert commands.parse_amount("12.5", 6, "mL", "v") == 12500000
    assert commands.parse_amount("0.000001", 6, "mL", "v") == 1
    assert commands.parse_amount("100.3", 3, "µg", "d") == 100300  # not 100299 via a float
    assert commands.parse_amount(" 7 ", 3, "µg", "d") == 7000
    with pytest.raises(UserError, match="at most 6 decimals in mL"):
        commands.parse_amount("1.0000001", 6, "mL", "v")
    for bad in ("-1", "abc", "nan", "inf", ""):
        with pytest.raises(UserError):
            commands.parse_amount(bad, 6, "mL", "v")
    with pytest.raises(UserError, match="above 0"):
        commands.parse_amount("0", 3, "µg", "d", allow_zero=False)
    assert commands.tolerance_nl(2000000) == 500000  # 0.5 mL at least
    assert commands.tolerance_nl(12345670) == 1234567  # a tenth above 5 mL


def test_clock_parsing():
    import datetime
    assert commands.parse_when("2024-01-01T07:30") == (8766, 27000000)
    assert commands.parse_when("now", datetime.datetime(2000, 1, 2, 0, 1, 59)) == (1, 60000)
    assert commands.clock_text([8766, 27000000]) == "2024-01-01 07:30"
    assert commands.clock_text(None) == "not set"
    with pytest.raises(UserError, match="YYYY-MM-DDTHH:MM"):
        commands.parse_when("tomorrow")


# ---- the command line -------------------------------------------------------------------------

def parse(*argv):
    ap = console.parser()
    opts = ap.parse_args(list(argv))
    console.check_options(ap, opts)
    return opts


def usage_error(capsys, *argv):
    with pytest.raises(SystemExit) as e:
        parse(*argv)
    assert e.value.code == 2
    return capsys.readouterr().err


def test_every_command_parses_with_its_options():
    o = parse("bolus", "--port", "/dev/x", "--dose-ug", "12.5", "--minutes", "30", "--yes", "--wait")
    assert (o.dose_ug, o.minutes, o.yes, o.wait, o.patient) == ("12.5", 30, True, True, False)
    o = parse("bolus", "--sim", "--patient", "--keys", "/k")
    assert o.patient and o.keys == "/k" and o.speed == 3600
    o = parse("refill", "--port", "p", "--withdrawn-ml", "1.5", "--volume-ml", "20", "--conc", "500",
              "--conc-again", "500", "--no-bridge")
    assert o.bridge is False and o.withdrawn_ml == "1.5"
    assert parse("refill", "--port", "p").bridge is None
    o = parse("clock", "set", "2024-05-01T08:00", "--port", "p")
    assert (o.action, o.when) == ("set", "2024-05-01T08:00")
    assert parse("clock", "set", "--port", "p").when == "now"
    o = parse("log", "export", "--format", "jsonl", "-o", "x.jsonl", "--port", "p")
    assert (o.format, o.output) == ("jsonl", "x.jsonl")
    o = parse("ack", "--role", "patient", "--sim", "--fault", "occlusion:1:2")
    assert o.role == "patient" and o.fault == ["occlusion:1:2"]
    o = parse("program", "programs/continuous-500.toml", "--port", "p", "--board", "sim")
    assert o.file.endswith(".toml") and o.board == "sim"
    assert parse("provision", "--port", "p", "--roles", "patient", "--dev", "e66").roles == "patient"
    assert parse("keys", "export", "--dev", "sim-1", "--to", "/x").roles == "patient"
    assert parse("alarm-settings", "--port", "p", "--low-ml", "2.5").low_ml == "2.5"


def test_bad_command_lines_say_what_is_wrong(capsys):
    assert "give --dose-ug and --minutes" in usage_error(capsys, "bolus", "--port", "p", "--dose-ug", "5")
    assert "--patient takes no" in usage_error(capsys, "bolus", "--port", "p", "--patient", "--minutes", "5")
    assert "1..15" in usage_error(capsys, "silence", "--port", "p", "--minutes", "16")
    assert "one of the arguments --port --sim --emu is required" in usage_error(capsys, "ack")
    assert "--roles" in usage_error(capsys, "provision", "--port", "p", "--roles", "doctor")
    assert "invalid choice" in usage_error(capsys, "log", "export", "--format", "xml", "--port", "p")


def test_confirmation_without_an_answer_asks_for_yes():
    class O:
        json = False
        yes = False
    ui = Ui(O(), stdin=io.StringIO(""), stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(UserError, match="--yes"):
        ui.confirm("Send?")
    ui = Ui(O(), stdin=io.StringIO("n\n"), stdout=io.StringIO(), stderr=io.StringIO())
    with pytest.raises(commands.Cancelled):
        ui.confirm("Send?")
    ui = Ui(O(), stdin=io.StringIO("yes\n"), stdout=io.StringIO(), stderr=io.StringIO())
    ui.confirm("Send?")


def test_errors_become_one_message_and_an_exit_status():
    class O:
        json = True
        yes = False
    out, err = io.StringIO(), io.StringIO()
    ui = Ui(O(), stdout=out, stderr=err)
    e = explain({"cmd": "bolus", "code": "refused", "reason": "above max_bolus", "limit": "max_bolus"})
    assert commands.report_error(e, ui, "bolus") == commands.EXIT_REFUSED
    assert "console: the pump refused `bolus`" in err.getvalue()
    body = json.loads(out.getvalue())
    assert body["ok"] is False and body["code"] == "refused" and body["reason"] == "above max_bolus"
    assert commands.report_error(commands.Cancelled(), ui, "bolus") == commands.EXIT_CANCELLED
    assert commands.report_error(UserError("x"), ui, "bolus") == commands.EXIT_USAGE


def test_keys_list_and_export_from_the_command_line(tmp_path, capsys):
    store = KeyStore(str(tmp_path / "k"))
    store.provision(DEV)
    assert console.main(["keys", "list", "--keys", store.directory]) == 0
    assert "sim-7" in capsys.readouterr().out
    assert console.main(["keys", "export", "--keys", store.directory, "--dev", DEV, "--to",
                         str(tmp_path / "p")]) == 0
    assert KeyStore(str(tmp_path / "p")).load(DEV).roles == ["patient"]
    assert console.main(["keys", "export", "--keys", store.directory, "--dev", "sim-9", "--to",
                         str(tmp_path / "p")]) == 2
    assert "holds no keys for pump sim-9" in capsys.readouterr().err


def test_an_invalid_program_file_lists_every_error_and_sends_nothing(tmp_path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text('drug = ""\nconcentration_ug_per_ml = 3\ndose_ug_per_day = 200\n')
    # --port of a port that does not exist: with --board, the file is checked before any
    # connection
    assert console.main(["program", str(bad), "--port", "/dev/no-such-pump", "--board", "pico"]) == 2
    err = capsys.readouterr().err
    assert "bad.toml: " in err and "errors" in err and "drug" in err and "concentration_ug_per_ml" in err
    assert "Nothing was sent" in err and "Traceback" not in err


# ---- program plans and diffs ----------------------------------------------------------------

def limits(rate, day, bolus):
    return {"max_rate_ng_per_day": rate, "max_24h_ng": day, "max_bolus_ng": bolus}


def test_the_pump_head_a_device_id_names():
    assert commands.board_of("sim-12") == "sim"
    assert commands.board_of("e6614c311b7a2b2f") == "pico"
    assert commands.board_of(None) == "pico"


def test_program_plan_keeps_the_pump_within_its_limits_at_every_step():
    p, old = {"drug": "x"}, {"drug": "y"}
    assert commands.program_plan(old, limits(5, 5, 5), p, limits(5, 5, 5), True) == [("program", p)]
    assert commands.program_plan(old, limits(5, 5, 5), p, limits(5, 5, 5), False) == []
    assert commands.program_plan(old, limits(5, 5, 5), p, limits(6, 5, 5), True) == [
        ("limits", limits(6, 5, 5)), ("program", p)]
    assert commands.program_plan(old, limits(5, 5, 5), p, limits(4, 5, 5), True) == [
        ("program", p), ("limits", limits(4, 5, 5))]
    assert commands.program_plan(old, limits(5, 5, 5), p, limits(4, 6, 5), True) == [
        ("limits", limits(5, 6, 5)), ("program", p), ("limits", limits(4, 6, 5))]
    assert commands.program_plan(None, limits(5, 5, 5), p, limits(4, 6, 5), True) == [
        ("limits", limits(4, 6, 5)), ("program", p)]
    assert commands.program_plan(old, limits(5, 5, 5), p, limits(4, 6, 5), False) == [("limits", limits(4, 6, 5))]


def test_program_diff_reads_in_clinical_units():
    old = {"drug": "baclofen", "conc_ug_per_ml": 500, "profiles": {"p": [[0, 200000]]}, "week": ["p"] * 7,
           "pump_dead_volume_nl": 0, "catheter_dead_volume_nl": 0, "priming_nl_per_hour": 600000,
           "keep_open_nl_per_day": 6000}
    new = dict(old, profiles={"day": [[0, 200000], [420, 187500]], "end": [[540, 100300]]},
               week=["day"] * 5 + ["end"] * 2, pump_dead_volume_nl=20000,
               patient_bolus={"dose_ng": 25000, "duration_min": 15, "lockout_min": 180, "max_per_24h": 3})
    lines = commands.program_diff(old, new)
    text = "\n".join(lines)
    assert "200 µg/day, all day, every day" in text
    assert "day: 00:00 200 µg/day, 07:00 187.5 µg/day" in text and "end: 09:00 100.3 µg/day" in text
    assert "week: Mon day, Tue day, Wed day, Thu day, Fri day, Sat end, Sun end" in text
    assert "Pump dead volume       0 µL  ->  20 µL" in text
    assert "Patient bolus          none  ->  25 µg over 15 min, lockout 180 min, at most 3 in 24 h" in text
    assert "Concentration" not in text and "Priming" not in text
    assert commands.program_diff(old, dict(old)) == []
    assert commands.limits_diff(limits(1, 2, 3), limits(1, 2, 3)) == []
    assert commands.limits_diff(limits(700000, 2, 3), limits(800000, 2, 3)) == [
        "  Max rate               700  ->  800 µg/day"]


# ---- the log as files ---------------------------------------------------------------------------

RECORDS = [
    {"t": "log", "ev": "power_up", "up_day": 0, "up_ms": 0, "boots": 1, "restored": False, "clock": "not_set"},
    {"t": "log", "ev": "fill", "up_day": 0, "up_ms": 5, "volume_nl": 20000000, "conc_ug_per_ml": 500},
    {"t": "log", "ev": "alarm", "up_day": 1, "up_ms": 3723000, "code": "occlusion", "state": "raised",
     "priority": "high", "excess_mbar": 612},
    {"t": "log", "ev": "ack", "up_day": 1, "up_ms": 3800000, "cleared": ["occlusion", "safety_limit"]},
    {"t": "log", "ev": "power_up", "up_day": 0, "up_ms": 0, "boots": 2, "restored": True, "clock": "restored"},
    {"t": "log", "ev": "refused", "up_day": 0, "up_ms": 9, "what": "bolus", "reason": 'a "quoted", comma',
     "limit": None},
]


def test_jsonl_keeps_every_record_exactly():
    text = logformat.render(RECORDS, "jsonl")
    lines = text.splitlines()
    assert len(lines) == len(RECORDS)
    # the records as the pump sent them, and beside them where each stands on the wall
    # clock (unknown here: the pump's clock was never set)
    assert [json.loads(line) for line in lines] == [dict(r, wall_clock=None) for r in RECORDS]
    assert lines[0] == json.dumps(dict(RECORDS[0], wall_clock=None), sort_keys=True)


def test_csv_has_fixed_columns_then_every_key_and_parses_back():
    text = logformat.render(RECORDS, "csv")
    header = text.splitlines()[0].split(",")
    assert header[:6] == ["boot", "wall_clock", "up_day", "up_ms", "pump_time", "ev"]
    assert header[6:] == sorted(header[6:]) and "t" not in header
    assert {"volume_nl", "code", "cleared", "reason", "boots"} <= set(header)
    rows = logformat.read_csv(text)
    assert [r["ev"] for r in rows] == [r["ev"] for r in RECORDS]
    assert [r["boot"] for r in rows] == ["1", "1", "1", "1", "2", "2"]
    assert rows[1]["volume_nl"] == "20000000" and rows[1]["code"] == ""
    assert rows[2]["pump_time"] == "day 1 01:02:03" and rows[2]["excess_mbar"] == "612"
    assert json.loads(rows[3]["cleared"]) == ["occlusion", "safety_limit"]
    assert rows[0]["restored"] == "false" and rows[4]["restored"] == "true"
    assert rows[5]["reason"] == 'a "quoted", comma' and rows[5]["limit"] == ""
    assert logformat.render([], "csv") == "boot,wall_clock,up_day,up_ms,pump_time,ev\n"


# ---- fill, prime, titrate: numbers, previews, and what is refused before sending ------------

FLEX = {"drug": "baclofen", "conc_ug_per_ml": 2000,
        "profiles": {"day": [[300, 720000], [540, 360000], [1260, 480000]], "end": [[540, 400000]]},
        "week": ["day"] * 5 + ["end"] * 2, "pump_dead_volume_nl": 20000, "catheter_dead_volume_nl": 150000,
        "priming_nl_per_hour": 600000, "keep_open_nl_per_day": 6000}


def titration(*argv):
    return commands.titration_args(parse("titrate", "--port", "p", *argv))


def test_titration_options_become_the_pumps_integers():
    assert titration("--percent", "-20") == {"percent": -20, "in_min": 0}
    assert titration("--percent", "+15%", "--in-min", "90") == {"percent": 15, "in_min": 90}
    assert titration("--dose-ug-per-day", "100.3") == {"daily_ng": 100300, "in_min": 0}  # not 100299
    assert titration("--dose-ug-per-day", "1", "--in-min", "8640") == {"daily_ng": 1000, "in_min": 8640}
    assert titration("--dose-ug-per-day", "3000")["daily_ng"] == 3000000


def test_fill_and_prime_options_parse(capsys):
    o = parse("fill", "--port", "p", "--volume-ml", "18.5", "--conc", "500", "--conc-again", "500", "--yes")
    assert (o.volume_ml, o.conc, o.conc_again, o.yes) == ("18.5", "500", "500", True)
    o = parse("prime", "--sim", "--part", "catheter", "--wait", "--json")
    assert (o.part, o.wait, o.json, o.yes) == ("catheter", True, True, False)
    assert parse("prime", "--port", "p").part == "all"
    # the pump primes the whole line or the catheter alone (firmware/pump/therapy.py prime)
    assert "invalid choice: 'pump'" in usage_error(capsys, "prime", "--port", "p", "--part", "pump")


def test_bad_titrations_are_usage_errors_before_any_connection(capsys):
    def err(*argv):
        return usage_error(capsys, "titrate", "--port", "p", *argv)
    assert "give --percent N or --dose-ug-per-day N" in err()
    assert "give --percent N or --dose-ug-per-day N" in err("--percent", "5", "--dose-ug-per-day", "5")
    assert "the pump titrates by -90..+100 %" in err("--percent", "-91")
    assert "the pump titrates by -90..+100 %" in err("--percent", "101")
    assert "changes nothing" in err("--percent", "0")
    assert "whole number of percent" in err("--percent", "12.5")
    assert "at most 3 decimals in µg/day" in err("--dose-ug-per-day", "0.0001")
    assert "above 0" in err("--dose-ug-per-day", "0")
    assert "the pump titrates to 1..3000 µg/day" in err("--dose-ug-per-day", "3000.001")
    assert "--in-min 8641: expected 0..8640" in err("--percent", "5", "--in-min", "8641")
    assert "--in-min" in err("--percent", "5", "--in-min", "soon")


def sim_pump_core(program=FLEX):
    # a pump core as the simulated Pico runs it, with room in its limits
    from pump.core import Pump
    from tools import programfile
    head = programfile.board("sim").head
    pump = Pump(head)
    pump.power_up(0)
    assert pump.set_limits(0, {"max_rate_ng_per_day": 10000000, "max_24h_ng": 10000000,
                               "max_bolus_ng": 200000}) is None
    assert pump.set_clock(0, 8766, 0) is None
    assert pump.fill(0, 20000000, 2000) is None
    assert pump.set_program(0, dict(program)) is None
    return pump


def test_the_consoles_titration_bounds_are_the_pumps():
    pump = sim_pump_core({"drug": "baclofen", "conc_ug_per_ml": 2000, "dose_ug_per_day": 200})
    lo, hi = commands.TITRATE_PERCENT_MIN, commands.TITRATE_PERCENT_MAX
    assert "percent=" in pump.titrate(1, percent=lo - 1) and "percent=" in pump.titrate(1, percent=hi + 1)
    dlo, dhi = commands.TITRATE_DAILY_NG_MIN, commands.TITRATE_DAILY_NG_MAX
    assert "daily_ng=" in pump.titrate(1, daily_ng=dlo - 1) and "daily_ng=" in pump.titrate(1, daily_ng=dhi + 1)
    assert "in_min=" in pump.titrate(1, percent=5, in_min=commands.TITRATE_IN_MIN_MAX + 1)
    assert pump.titrate(1, percent=5, in_min=commands.TITRATE_IN_MIN_MAX) is None
    assert pump.titrate(2, daily_ng=dhi) is None and pump.titrate(3, daily_ng=dlo * 100) is None
    assert pump.titrate(4, percent=lo) is None and pump.titrate(5, percent=hi) is None


def test_the_titration_preview_is_exactly_what_the_pump_then_runs():
    for args in ({"percent": -20}, {"percent": 7}, {"daily_ng": 187500}, {"daily_ng": 1234567}):
        pump = sim_pump_core()
        preview = commands.titrated_profiles(pump.program.to_dict(), dict(args, in_min=0))
        assert pump.titrate(10, in_min=0, **args) is None
        assert preview == pump.program.to_dict()["profiles"], args


def test_daily_doses_are_exact_and_shown_before_and_after():
    from fractions import Fraction
    # the day profile following itself: 00:00-05:00 still at 21:00's 480, then 720, 360, 480
    assert commands.profile_daily_ng(FLEX["profiles"]["day"]) == 460000
    assert commands.profile_daily_ng([[0, 200000]]) == 200000
    assert commands.profile_daily_ng([[0, 1], [1, 2]]) == Fraction(1 + 2 * 1439, 1440)
    assert commands.titration_lines({"all": [[0, 200000]]}, {"all": [[0, 160000]]}) == [
        "  Daily dose      200 µg/day  ->  160 µg/day"]
    new = commands.titrated_profiles(FLEX, {"daily_ng": 187500, "in_min": 0})
    lines = commands.titration_lines(FLEX["profiles"], new)
    assert lines[0] == "  day: 460 µg a day  ->  ~187.5 µg a day"  # each step rounded to the ng/day
    assert lines[1] == "    now  05:00 720 µg/day, 09:00 360 µg/day, 21:00 480 µg/day"
    assert lines[2] == "    new  05:00 293.478 µg/day, 09:00 146.739 µg/day, 21:00 195.652 µg/day"
    assert lines[3] == "  end: 400 µg a day  ->  187.5 µg a day"


def test_what_priming_fills_and_about_how_long_it_takes():
    assert commands.line_volume_nl(FLEX, "all") == 170000
    assert commands.line_volume_nl(FLEX, "catheter") == 150000
    assert commands.priming_ms(170000, 600000) == 1020000  # 17 min
    assert commands.priming_ms(1, 600000) == 6  # rounded up
    assert commands.prime_lines(FLEX, "all") == ["  Pump dead volume       20 µL",
                                                 "  Catheter dead volume   150 µL",
                                                 "  To prime               170 µL at 600 µL/h: about 17 min"]
    assert [line.split()[0] for line in commands.prime_lines(FLEX, "catheter")] == ["Catheter", "To"]


class FakePump:
    # The read side of a Link, with canned answers; records what would have been sent.
    dev = "sim-7"
    port = "/dev/fake"

    def __init__(self, status, program):
        self._status = dict({"t": "status", "conc_ug_per_ml": 0, "reservoir_nl": 0, "bolus": None}, **status)
        self._settings = {"program": program}
        self.sent = []

    def status(self, timeout_s=3.0):
        return self._status

    def settings(self, timeout_s=3.0):
        return self._settings

    def command(self, cmd, args=None, role="clinician", timeout_s=3.0):
        self.sent.append((cmd, args))
        raise AssertionError("nothing should be sent: %s %s" % (cmd, args))


def run_cmd(fn, link, *argv, stdin=""):
    opts = parse(*argv, "--port", "p")
    out, err = io.StringIO(), io.StringIO()
    ui = Ui(opts, stdin=io.StringIO(stdin), stdout=out, stderr=err)
    try:
        return fn(opts, link, ui), out.getvalue(), err.getvalue()
    except (UserError, commands.Cancelled) as e:
        return e, out.getvalue(), err.getvalue()


def test_fill_refuses_a_pump_that_holds_drug_and_points_to_refill():
    link = FakePump({"conc_ug_per_ml": 500, "reservoir_nl": 1250000}, FLEX)
    e, _, _ = run_cmd(commands.cmd_fill, link, "fill", "--volume-ml", "20", "--conc", "500", "--conc-again",
                      "500", "--yes")
    assert isinstance(e, UserError) and e.status == commands.EXIT_USAGE
    assert "has been filled already: 1.25 mL of 500 µg/mL" in str(e)
    assert "python -m tools.console refill" in str(e) and "Nothing was sent" in str(e)
    assert link.sent == []


def test_fill_checks_the_concentration_twice_and_against_the_program():
    e, _, _ = run_cmd(commands.cmd_fill, FakePump({}, None), "fill", "--volume-ml", "20", "--conc", "500",
                      "--conc-again", "50", "--yes")
    assert "entered as 500 and as 50 µg/mL: they must agree" in str(e)
    e, out, _ = run_cmd(commands.cmd_fill, FakePump({}, FLEX), "fill", "--volume-ml", "20", "--conc", "500",
                        "--conc-again", "500", "--yes")
    assert "the pump's program is for 2000 µg/mL and the drug is 500 µg/mL" in str(e)
    assert "its reservoir is empty (program: baclofen, 2000 µg/mL)" in out
    # asked when not given; a volume finer than a nL is asked again
    e, _, err = run_cmd(commands.cmd_fill, FakePump({}, None), "fill", stdin="20.0000001\n20\n2000\n2000\nn\n")
    assert isinstance(e, commands.Cancelled)
    assert "at most 6 decimals in mL" in err and "First fill: 20 mL of 2000 µg/mL (40000 µg of drug). Send?" in err


def test_prime_says_what_stands_in_its_way_before_sending():
    def prime(status, program, *argv):
        e, out, _ = run_cmd(commands.cmd_prime, FakePump(status, program), "prime", "--yes", *argv)
        assert isinstance(e, UserError), e
        return str(e), out
    assert "has no program" in prime({}, None)[0]
    assert "holds no drug to prime with: fill it first" in prime({}, FLEX)[0]
    no_line = dict(FLEX, pump_dead_volume_nl=0, catheter_dead_volume_nl=0)
    assert "nothing to prime: the program's dead volume is 0 µL" in prime({"conc_ug_per_ml": 2000}, no_line)[0]
    bolus = {"kind": "clinician", "strokes_confirmed": 3, "strokes_total": 20, "requested_ng": 10000,
             "delivered_ng": 1500}
    text, out = prime({"conc_ug_per_ml": 2000, "bolus": bolus}, FLEX, "--part", "catheter")
    assert "a bolus is running (clinician: 3 of 20 strokes confirmed" in text and "cancel-bolus" in text
    assert "Priming of pump sim-7 (baclofen, 2000 µg/mL): the catheter" in out
    assert "150 µL at 600 µL/h: about 15 min" in out


def test_titrate_shows_the_doses_then_sends_nothing_when_the_answer_is_no():
    link = FakePump({"conc_ug_per_ml": 2000, "titration_in_ms": 3600000, "paused": True}, FLEX)
    e, out, err = run_cmd(commands.cmd_titrate, link, "titrate", "--percent", "-20", "--in-min", "30", stdin="n\n")
    assert isinstance(e, commands.Cancelled) and link.sent == []
    assert "Titration of pump sim-7 (baclofen, 2000 µg/mL): -20 % on every step, in 30 min" in out
    assert "  day: 460 µg a day  ->  368 µg a day" in out
    assert "    new  05:00 576 µg/day, 09:00 288 µg/day, 21:00 384 µg/day" in out
    assert "It replaces the titration due in 1 h" in out and "The pump is paused" in out
    assert "Titrate? [y/N]" in err
    e, _, _ = run_cmd(commands.cmd_titrate, FakePump({}, None), "titrate", "--percent", "5", "--yes")
    assert "has no program to titrate" in str(e)
