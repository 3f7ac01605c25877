# The link's commands through the real shell and core, on both runtimes: HMAC-SHA256
# against RFC 4231's vectors, every command answered once, and the attacks of
# docs/security.md (replay, a flipped bit, a wrong key, a patient key on a clinician
# command, counter rollback after a restart, an oversized frame, a garbage flood, guessing
# with backoff) refused without any change to therapy.
#
# mp-heap: 288k
# (the simulated board, the host's side of the link and the frames it keeps sit beside
# the whole firmware here: the simulated Pico's own 256k, and the host's share)
import binascii

from boards.sim.rng import Rng
from check import scratch_dir
from linkkit import PROGRAM, Host, events, made_up_keys, result
from pump import auth, wire

BOLUS = {"dose_ng": 20000, "duration_min": 30}
C = auth.CLINICIAN
P = auth.PATIENT


def _hex(b):
    return binascii.hexlify(b).decode()


def test_hmac_sha256_gives_rfc_4231s_test_vectors():
    # RFC 4231 section 4: test cases 1, 2, 3, 6 and 7 (6 and 7: a key longer than a block)
    h = auth.hmac_sha256
    assert _hex(h(b"\x0b" * 20, b"Hi There")) == \
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
    assert _hex(h(b"Jefe", b"what do ya want for nothing?")) == \
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    assert _hex(h(b"\xaa" * 20, b"\xdd" * 50)) == \
        "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"
    assert _hex(h(b"\xaa" * 131, b"Test Using Larger Than Block-Size Key - Hash Key First")) == \
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
    assert _hex(h(b"\xaa" * 131, b"This is a test using a larger than block-size key and a larger than block-size "
                                 b"data. The key needs to be hashed before being used by the HMAC algorithm.")) == \
        "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2"
    assert auth.same(b"abc", b"abc") and not auth.same(b"abc", b"abd") and not auth.same(b"ab", b"abc")


def test_hmac_is_micropython_libs_on_micropython():
    # the module the Pico's firmware freezes (manifest.py), not a copy of ours
    import sys
    import hmac
    if sys.implementation.name == "micropython":
        assert hmac.__file__.endswith("hmac.mpy") and not hasattr(hmac, "compare_digest"), hmac.__file__
    assert auth.hmac is hmac


def test_read_only_commands_need_no_key_and_hello_tells_what_a_console_needs():
    h = Host(scratch_dir("cmd-hello"))
    r = result(h.send("hello"))
    assert r["ok"] and r["dev"] == h.board.device_id and r["version"] == wire.VERSION
    assert r["roles"] == [C, P] and r["ctr"] == {C: 0, P: 0} and r["max_frame"] == wire.MAX_FRAME
    got = h.send("status")
    assert result(got)["ok"] and [b for b in got if b["t"] == "status"][0]["state"] == "running"
    r = result(h.send("settings"))
    assert r["program"]["conc_ug_per_ml"] == 500 and r["limits"]["max_bolus_ng"] > 0
    assert r["alarm_settings"]["low_reservoir_nl"] == 2000000


def test_a_signed_command_runs_once_and_its_counter_is_on_the_flash_before_its_answer():
    h = Host(scratch_dir("cmd-once"))
    # what the flash holds at the moment each frame leaves the pump
    link = h.link
    written = link.write
    at_write = []

    def write(data):
        state = h.board.storage.read("state")
        at_write.append((data, wire.Reader(max_frame=len(state) + 1).feed(state)[1].body["auth"]))
        written(data)
    link.write = write
    link.inbox += h.frame("bolus", BOLUS, C)
    h.app.step()  # one pass: the command is taken and answered
    got = h.take()
    assert result(got)["ok"] and len(events(got, "bolus_start")) == 1
    # the counter was on the flash before the first frame (its answer among them) went out
    assert at_write and all(ctr == [1, 0] for _, ctr in at_write)


def test_a_replayed_command_is_refused_whether_resent_as_is_or_reframed():
    h = Host(scratch_dir("cmd-replay"))
    captured = h.frame("bolus", BOLUS, C)
    assert result(h.send_raw(captured))["ok"]
    h.run(3600000)  # the bolus is over
    h.take()
    # the very same bytes: the same seq
    got = h.send_raw(captured)
    assert result(got)["code"] == "out_of_order" and not events(got, "bolus_start")
    # the same body in a new frame with a fresh seq (as an attacker would): the counter
    body = wire.Reader().feed(captured)[0].body
    h.seq += 1
    got = h.send_raw(wire.encode(h.seq, body))
    r = result(got)
    assert r["code"] == "auth_failed" and r["reason"] == "stale_counter" and not events(got, "bolus_start")
    assert events(got, "auth_failed")[0]["reason"] == "stale_counter"


def test_a_flipped_bit_anywhere_in_the_command_fails_its_mac():
    h = Host(scratch_dir("cmd-flip"))
    good = wire.Reader().feed(h.frame("bolus", BOLUS, C))[0].body
    for change in ("dose", "role_ctr", "mac"):
        body = {"cmd": good["cmd"], "args": dict(good["args"]), "auth": dict(good["auth"])}
        if change == "dose":
            body["args"]["dose_ng"] ^= 1 << 10  # 20000 -> 21024
        elif change == "role_ctr":
            body["auth"]["ctr"] ^= 1 << 4
        else:
            m = body["auth"]["mac"]
            body["auth"]["mac"] = m[:10] + ("0" if m[10] != "0" else "1") + m[11:]
        h.seq += 1
        got = h.send_raw(wire.encode(h.seq, body))  # a valid frame: CRC recomputed
        r = result(got)
        assert r["code"] == "auth_failed" and r["reason"] == "bad_mac", (change, r)
        assert not events(got, "bolus_start")
        h.run(400000)  # past any lockout
        h.take()
    assert h.pump.auth.ctr[C] == 0


def test_a_wrong_key_or_a_patient_key_on_a_clinician_command_is_refused():
    h = Host(scratch_dir("cmd-keys"))
    other = made_up_keys(99)
    r = result(h.send("bolus", BOLUS, C, key=other[C]))
    assert r["code"] == "auth_failed" and r["reason"] == "bad_mac"
    # the patient's own key, honestly named, on a clinician command
    r = result(h.send("bolus", BOLUS, P))
    assert r["reason"] == "wrong_role"
    # the patient's key passed off as the clinician's
    r = result(h.send("bolus", BOLUS, C, key=h.keys[P]))
    assert r["reason"] == "bad_mac"
    h.run(400000)
    h.take()
    # and a clinician key cannot give a patient bolus in the patient's name
    r = result(h.send("patient_bolus", None, P, key=h.keys[C]))
    assert r["reason"] == "bad_mac"
    assert h.pump.bolus is None and h.pump.auth.ctr == {C: 0, P: 0}


def test_the_patient_role_silences_and_acknowledges_but_nothing_more():
    h = Host(scratch_dir("cmd-patient"))
    assert h.pump.alarms.top() is not None  # clock_not_set: there is something to silence
    assert result(h.send("silence", {"minutes": 5}, P))["ok"]
    assert result(h.send("ack", None, P))["ok"]
    for cmd, args in (("program", {"drug": "baclofen", "conc_ug_per_ml": 500, "dose_ug_per_day": 900}),
                      ("limits", {"max_rate_ng_per_day": 9000000, "max_24h_ng": 9000000, "max_bolus_ng": 9000000}),
                      ("refill", {"withdrawn_nl": 0, "volume_nl": 1000000, "conc_ug_per_ml": 500, "conc_again": 500}),
                      ("clock", {"day": 9000, "ms": 0})):
        h.run(400000)
        h.take()
        r = result(h.send(cmd, args, P))
        assert r["code"] == "auth_failed" and r["reason"] == "wrong_role", (cmd, r)
    assert h.pump.program.to_dict()["profiles"] == result(h.send("settings"))["program"]["profiles"]


def test_counters_survive_a_restart_so_an_old_command_stays_refused():
    flash = scratch_dir("cmd-restart")
    h = Host(flash)
    first = h.frame("bolus", BOLUS, C)
    assert result(h.send_raw(first))["ok"]
    h.run(3600000)
    # power cut and restart on the same flash: the pump comes back from its state file
    h.board.reboot()
    h.boot()
    h.take()
    assert h.pump.auth.ctr[C] == 1
    assert result(h.send("hello"))["ctr"] == {C: 1, P: 0}
    body = wire.Reader().feed(first)[0].body
    h.seq += 1
    r = result(h.send_raw(wire.encode(h.seq, body)))
    assert r["code"] == "auth_failed" and r["reason"] == "stale_counter"
    assert result(h.send("bolus", BOLUS, C))["ok"]  # the next counter works


def test_repeated_failures_back_off_and_every_failure_is_logged():
    h = Host(scratch_dir("cmd-backoff"))
    bad = made_up_keys(5)[C]
    for i in range(3):
        r = result(h.send("bolus", BOLUS, C, key=bad, ms=10))
        assert r["reason"] == "bad_mac"
    assert "retry_in_ms" in r and r["retry_in_ms"] == auth.LOCKOUT_FIRST_MS
    # locked: even the right key is turned away, unchecked, until the time is up
    r = result(h.send("bolus", BOLUS, C, ms=10))
    assert r["reason"] == "locked_out" and 0 < r["retry_in_ms"] <= auth.LOCKOUT_FIRST_MS
    assert result(h.send("status", ms=10))["ok"]  # reading goes on
    # a fourth failure after the lockout doubles it
    h.run(auth.LOCKOUT_FIRST_MS)
    got = h.send("bolus", BOLUS, C, key=bad, ms=10)
    r = result(got)
    assert r["reason"] == "bad_mac" and r["retry_in_ms"] == 2 * auth.LOCKOUT_FIRST_MS
    assert events(got, "auth_lockout_end")[0]["refused"] == 1  # the first lockout's
    h.run(2 * auth.LOCKOUT_FIRST_MS)
    got = h.send("bolus", BOLUS, C)
    assert result(got)["ok"] and not events(got, "auth_lockout_end")  # it refused nothing
    assert h.pump.auth.failures == 0
    log = h.board.storage.read("log")
    assert log.count(b'"ev":"auth_failed"') == 4 and log.count(b'"ev":"auth_lockout"') == 2
    assert b'"reason":"bad_mac"' in log
    # the lockout is capped
    a = auth.Auth()
    for _ in range(40):
        a._failed(0, "bad_mac")
    assert a.locked_ms(0) == auth.LOCKOUT_MAX_MS


def test_without_keys_no_therapy_command_runs_and_keys_for_another_pump_are_refused():
    h = Host(scratch_dir("cmd-nokeys"), with_keys=False)
    r = result(h.send("bolus", BOLUS, C))
    assert r["code"] == "auth_failed" and r["reason"] == "no_key"
    assert result(h.send("hello"))["roles"] == []
    flash = scratch_dir("cmd-otherkeys")
    h2 = Host(flash, with_keys=False, program=None)
    h2.board.storage.write("keys", auth.keys_frame("sim-99", made_up_keys()))
    h2.board.reboot()
    h2.boot()
    got = h2.take()
    assert h2.pump.auth.keys == {}
    assert b'"ev":"keys_invalid"' in h2.board.storage.read("log")
    assert "sim-99" in h2.pump.keys_problem and got is not None


def test_unsigned_unknown_malformed_and_out_of_order_commands_change_nothing():
    h = Host(scratch_dir("cmd-bad"))
    before = h.pump.program.to_dict()
    cases = [
        ({"cmd": "bolus", "args": BOLUS}, "auth_required"),
        ({"cmd": "make_coffee"}, "unknown_command"),
        ({"cmd": 5}, "unknown_command"),
        ({"nocmd": 1}, "unknown_command"),
        ({"cmd": "status", "args": [1]}, "bad_request"),
        ({"cmd": "bolus", "args": {"dose_ng": "lots", "duration_min": 5}}, "bad_request"),
        ({"cmd": "bolus", "args": {"dose_ng": 5}}, "bad_request"),
        ({"cmd": "bolus", "args": {"dose_ng": 5, "duration_min": 5, "now": True}}, "bad_request"),
        ({"cmd": "fill", "args": {"volume_nl": 5, "conc_ug_per_ml": 5, "bridge": 1}}, "bad_request"),
    ]
    for body, code in cases:
        h.seq += 1
        r = result(h.send_raw(wire.encode(h.seq, body), ms=10))
        assert r["code"] == code and not r["ok"] and r["re"] == h.seq, (body, r)
    # a duplicate seq, and one from the past: answered, never acted on
    r = result(h.send_raw(wire.encode(h.seq, {"cmd": "status"}), ms=10))
    assert r["code"] == "out_of_order" and r["expected_after"] == h.seq
    r = result(h.send_raw(wire.encode(h.seq - 5, {"cmd": "status"}), ms=10))
    assert r["code"] == "out_of_order"
    # hello starts a new session from any seq
    assert result(h.send("hello", seq=3))["ok"]
    h.seq = 3
    assert result(h.send("status"))["ok"]
    st = [b for b in h.send("status") if b["t"] == "status"][0]["link"]
    assert st["unknown_command"] == 3 and st["bad_request"] == 5 and st["out_of_order"] == 2
    assert st["auth_failed"] == 1
    assert h.pump.program.to_dict() == before and h.pump.bolus is None


def test_an_oversized_frame_and_a_garbage_flood_are_counted_answered_and_survived():
    h = Host(scratch_dir("cmd-flood"))
    strokes = h.board.head.strokes_made
    # a frame of 5 KiB, arriving as a serial link delivers it: in pieces
    got = h.send_raw(b"~1 7 {\"cmd\":\"status\",\"pad\":\"", ms=1)
    for _ in range(80):
        got += h.send_raw(b"x" * 64, ms=1)
    got += h.send_raw(b"\"} 00000000\n", ms=10)
    r = result(got)  # one answer, when it grew past the limit
    assert r["code"] == "bad_frame" and r["oversize"] == 1 and r["re"] is None
    # 64 KiB of noise with frame starts, newlines and broken frames mixed in, in pieces
    rng = Rng(3)
    results = 0
    for _ in range(64):
        chunk = bytearray(rng.below(256) for _ in range(1024))
        for _ in range(8):
            chunk[rng.below(1024)] = 0x7E  # "~"
            chunk[rng.below(1024)] = 0x0A
        got = h.send_raw(bytes(chunk), ms=250)
        results += len([b for b in got if b["t"] == "result"])
    # answered, but at most once a second of pump time (16 s of it passed)
    assert 1 <= results <= 17
    # and the link works again at once (the flood's torn last frame may still be
    # reported beside the answer)
    got = [b for b in h.send("hello") if b["t"] == "result" and b["cmd"] == "hello"]
    assert len(got) == 1 and got[0]["ok"]
    h.run(600000)  # therapy went on meanwhile and goes on: a stroke every 54 s
    st = [b for b in h.send("status") if b["t"] == "status"][0]
    assert st["link"]["garbage_bytes"] > 10000 and st["link"]["bad_format"] + st["link"]["bad_crc"] > 10
    assert st["state"] == "running" and h.board.head.strokes_made - strokes >= 10
    assert st["strokes_programmed"] - st["strokes_confirmed"] <= 1
    assert h.pump.bolus is None and h.pump.auth.ctr == {C: 0, P: 0}


def test_the_log_streams_in_order_skipping_a_damaged_record():
    h = Host(scratch_dir("cmd-log"))
    h.run(3 * 3600000)
    assert result(h.send("bolus", BOLUS, C))["ok"]
    h.run(3600000)
    h.take()
    s = h.board.storage
    stored = wire.Reader().feed(s.read("log"))
    # an old log beside the current one, with one damaged record in it
    stored = [f.body["ev"] for f in stored]
    old = b"".join(wire.encode(i, {"t": "event", "ev": "old", "n": i, "up_day": 0, "up_ms": i,
                                   "pad": "p" * (2500 if i == 12 else 0)}) for i in range(20))
    broken = old.replace(b'"n":7,', b'"n":8,')
    s.write("log.1", broken)
    total = len(broken) + s.size("log")
    old = broken = None
    h.link.inbox += h.frame("log")
    h.run(60000)
    got = h.take()
    start = [b for b in got if b["t"] == "log_start"][0]
    assert start["bytes"] == total
    recs = [b for b in got if b["t"] == "log"]
    r = result(got)
    assert r["ok"] and r["corrupt"] == 1 and r["records"] == len(recs) == 19 + len(stored)
    assert [b["n"] for b in recs[:19]] == [i for i in range(20) if i != 7]
    assert len(recs[11]["pad"]) == 2500  # longer than a piece: read in a bigger one
    assert [b["ev"] for b in recs[19:]] == stored
    assert "bolus_start" in [b["ev"] for b in recs]
    # a second export while one runs is turned away
    h.link.inbox += h.frame("log") + h.frame("log")
    h.run(60000)
    codes = sorted(b["code"] for b in h.take() if b["t"] == "result")
    assert codes == ["busy", "ok"]


def test_a_first_fill_must_match_the_program_and_a_second_one_is_a_refill():
    h = Host(scratch_dir("cmd-fill"), program=None)
    assert result(h.send("program", {"drug": "baclofen", "conc_ug_per_ml": 500, "dose_ug_per_day": 200}, C))["ok"]
    # four times the strength the program was written for: the classic refill error
    r = result(h.send("fill", {"volume_nl": 20000000, "conc_ug_per_ml": 2000}, C))
    assert r["code"] == "refused" and r["field"] == "conc_ug_per_ml" and "program is for 500" in r["reason"]
    assert h.pump.reservoir.conc_ug_per_ml == 0
    h.board.head.reservoir_nl = 0  # the simulated reservoir is empty too...
    assert result(h.send("fill", {"volume_nl": 20000000, "conc_ug_per_ml": 500}, C))["ok"]
    assert h.board.head.reservoir_nl == 20000000  # ...until the clinician's hands fill it
    # a pump that holds drug is refilled with the residual check, not filled over
    r = result(h.send("fill", {"volume_nl": 20000000, "conc_ug_per_ml": 500}, C))
    assert r["code"] == "refused" and "use refill" in r["reason"]
    assert result(h.send("refill", {"withdrawn_nl": 20000000, "volume_nl": 15000000, "conc_ug_per_ml": 500,
                                    "conc_again": 500}, C))["ok"]
    assert h.board.head.reservoir_nl == 15000000


def test_a_damaged_state_takes_the_keys_out_of_use_until_new_ones_come():
    flash = scratch_dir("cmd-corrupt")
    h = Host(flash)
    captured = h.frame("bolus", BOLUS, C)
    assert result(h.send_raw(captured))["ok"]
    h.run(3600000)
    # the state file is damaged while the power is off: the counters are lost with it
    h.board.storage.write("state", b"~1 0 {} 00000000\n")
    h.board.reboot()
    h.boot()
    h.take()
    assert h.pump.auth.keys == {} and "provision new keys" in h.pump.keys_problem
    body = wire.Reader().feed(captured)[0].body
    h.seq += 1
    r = result(h.send_raw(wire.encode(h.seq, body)))  # the captured bolus does not run again
    assert r["code"] == "auth_failed" and r["reason"] == "no_key"
    # nor after another restart, now that a fresh state has been written
    h.board.reboot()
    h.boot()
    h.take()
    h.seq += 1
    assert result(h.send_raw(wire.encode(h.seq, body)))["reason"] == "no_key"
    # new keys (provisioned by the tools) work from counter 1 again
    h.keys = made_up_keys(42)
    h.ctr = {C: 0, P: 0}
    h.board.storage.write("keys", auth.keys_frame(h.board.device_id, h.keys))
    h.board.reboot()
    h.boot(PROGRAM)
    h.take()
    assert result(h.send("bolus", BOLUS, C))["ok"]


def test_the_command_boundary_answers_any_exception_from_therapy_code():
    host = Host(scratch_dir("boundary"))

    def broken(now):
        raise ZeroDivisionError("division by zero")
    host.pump.pause = broken
    r = result(host.send("pause", {}, role="clinician"))
    assert r["code"] == "bad_request" and "ZeroDivisionError" in r["reason"], r
    assert result(host.send("status"))["ok"]  # the loop goes on
