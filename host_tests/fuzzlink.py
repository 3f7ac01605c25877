# Hypothesis strategies and checks for fuzzing the pump's link: the frame reader and the
# command dispatcher, on the core alone (no board: thousands of cases a second). Used by
# host_tests/test_link_fuzz.py (a few thousand cases in every test run) and by
# `make bench` (a longer campaign, tools/bench_link.py).
import os
import sys

from hypothesis import strategies as st

HERE = os.path.dirname(os.path.abspath(__file__))
for _p in (os.path.join(HERE, "portable"), os.path.join(os.path.dirname(HERE), "firmware")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from corekit import BACLOFEN_500, make_pump  # noqa: E402
from pump import auth, commands, wire  # noqa: E402

DEV = "fuzz-1"
KEYS = {auth.CLINICIAN: bytes(range(32)), auth.PATIENT: bytes(range(32, 64))}
NOW = (1 << 30) - 5000

# JSON values as json.loads gives them (no floats: the pump's JSON has none, but a host
# may send them, so some are in)
scalars = (st.none() | st.booleans() | st.integers(-(1 << 40), 1 << 40) | st.integers(-3, 3)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
whole_values = st.recursive(st.none() | st.booleans() | st.integers(-(1 << 40), 1 << 40) | st.text(max_size=12),
                            lambda inner: st.lists(inner, max_size=4)
                            | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12)
cmd_names = st.sampled_from(sorted(commands.TABLE)) | st.text(max_size=10)


def arg_names(cmd):
    spec = commands.TABLE[cmd][2]
    return [item.split(":")[0] for item in spec.split() if item != "*"]


@st.composite
def bodies(draw):
    # a command body: a real command name (mostly) with arguments of the right names and
    # any values, or anything at all
    cmd = draw(cmd_names)
    body = {"cmd": cmd} if draw(st.booleans()) or cmd in commands.TABLE else {}
    if cmd in commands.TABLE:
        names = arg_names(cmd) + ["extra"]
        args = draw(st.dictionaries(st.sampled_from(names), json_values | st.integers(-10, 10 ** 9), max_size=5))
        if draw(st.integers(0, 9)) == 0:
            args = draw(json_values)
        body["args"] = args
    if draw(st.booleans()):
        body["auth"] = draw(json_values | st.fixed_dictionaries(
            {"role": st.sampled_from(list(auth.ROLES)) | st.text(max_size=4),
             "ctr": st.integers(-2, 1 << 31), "mac": st.text(max_size=70)}))
    for k, v in draw(st.dictionaries(st.text(max_size=6), json_values, max_size=2)).items():
        body.setdefault(k, v)
    return body


@st.composite
def signed_commands(draw):
    # a therapy command, validly signed, with arguments of the right names and types but
    # any values: what a clinician's buggy tool might send
    cmd = draw(st.sampled_from(sorted(c for c in commands.TABLE if commands.TABLE[c][0])))
    spec = commands.TABLE[cmd][2]
    args = {}
    for item in spec.split():
        if item == "*":
            continue
        name, kind = item.split(":")
        if kind.endswith("?") and draw(st.booleans()):
            continue
        k = kind[0]
        if k == "i":
            args[name] = draw(st.integers(-5, 5) | st.integers(-(1 << 34), 1 << 34) | st.integers(0, 10 ** 8))
        elif k == "b":
            args[name] = draw(st.booleans())
        else:
            args[name] = draw(st.sampled_from(["all", "pump", "catheter"]) | st.text(max_size=6))
    if spec == "*":
        args = draw(st.dictionaries(st.sampled_from(["drug", "conc_ug_per_ml", "dose_ug_per_day", "profiles",
                                                    "week", "patient_bolus", "x"]), whole_values, max_size=5))
    role = auth.PATIENT if commands.TABLE[cmd][0] == commands.P else auth.CLINICIAN
    return cmd, args, role


def fresh_pump():
    p = make_pump()
    p.set_identity(DEV, auth.keys_frame(DEV, KEYS))
    p.power_up(NOW)
    assert p.fill(NOW, 20000000, 500) is None
    assert p.set_program(NOW, BACLOFEN_500) is None
    p.take_output()
    p.take_log()
    return p


def therapy(p):
    # what must not change unless a command was accepted
    return (p.program.to_dict() if p.program else None, p.limits.to_dict(), p.reservoir.volume_nl,
            p.reservoir.conc_ug_per_ml, p.bolus is not None, p.paused, dict(p.auth.ctr),
            (p.low_nl, p.low_days, p.floor_nl), p.clock.valid)


def results_of(p):
    # the results the core sent (a log export is served as by a shell with an empty log)
    for _ in range(8):
        if not p.wants & commands.WANT_LOG:
            break
        if p.log_file is None:
            p.log_begin(NOW, -1, -1)
        else:
            p.log_chunk(NOW, None)
    out = []
    for frame in p.take_output():
        for f in wire.Reader().feed(frame):
            if f.body.get("t") == "result":
                out.append(f.body)
    p.take_log()
    return out


def sign(p, cmd, args, role, ctr):
    return {"cmd": cmd, "args": args,
            "auth": {"role": role, "ctr": ctr, "mac": auth.mac_hex(KEYS[role], DEV, role, ctr, cmd, args)}}


def raw_frame(seq, body):
    # a frame as any host might write it (floats included), with a good CRC
    import binascii
    import json
    text = json.dumps(body, separators=(",", ":")).replace("~", "\\u007e")  # "~" only inside strings
    head = ("~1 %d %s " % (seq, text)).encode()
    return head + b"%08x\n" % (binascii.crc32(head) & 0xFFFFFFFF)


# ---- the properties, shared by host_tests/test_link_fuzz.py and the campaign in tools/bench_link.py

def check_reader(data):
    # any bytes: no exception, and cut byte by byte they give the same frames and counts
    whole = wire.Reader()
    frames = whole.feed(data)
    for f in frames:
        assert type(f.body) is dict and 0 <= f.seq < wire.SEQ_MODULO
    bytewise = wire.Reader()
    again = []
    for i in range(len(data)):
        again += bytewise.feed(data[i:i + 1])
    assert [(f.seq, f.body) for f in again] == [(f.seq, f.body) for f in frames]
    counts = ("bad_crc", "bad_format", "oversize", "garbage_bytes")
    assert [getattr(bytewise, c) for c in counts] == [getattr(whole, c) for c in counts]
    assert whole.garbage_bytes <= len(data)


def check_any_bodies(items):
    # any command bodies: one result each, and therapy unchanged (none is validly signed)
    p = fresh_pump()
    before = therapy(p)
    p.received(NOW, b"".join(raw_frame(i + 1, body) for i, body in enumerate(items)))
    res = results_of(p)
    assert sorted(r["re"] for r in res) == list(range(1, len(items) + 1))  # a log export answers last
    assert all(r["code"] != "ok" or r["cmd"] in ("hello", "status", "settings", "log") for r in res)
    assert therapy(p) == before


def check_signed(cmds):
    # validly signed commands with any values: answered, never an exception in therapy code
    p = fresh_pump()
    p.received(NOW, b"".join(raw_frame(i + 1, sign(p, cmd, args, role, i + 1))
                             for i, (cmd, args, role) in enumerate(cmds)))
    res = results_of(p)
    assert [r["re"] for r in res] == list(range(1, len(cmds) + 1))
    assert all(r["code"] in ("ok", "refused", "bad_request") for r in res), res
    # (a caught exception is answered bad_request "could not be carried out": a bug hidden)
    assert not [r for r in res if r["code"] == "bad_request" and r["reason"].startswith("could not be carried out")]
    p.tick(NOW + 1000)  # and the core carries on
