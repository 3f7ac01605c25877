# The link fuzzed with hypothesis (docs/security.md, "Robustness"): the frame reader never
# raises and finds every good frame among garbage; every command body, however odd, gets
# exactly one result and changes therapy only when validly signed; validly signed commands
# with odd values are answered, never crash the core. `make bench` runs a longer
# campaign of the same properties (tools/bench_link.py) and prints its count.
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzzlink import (NOW, bodies, check_any_bodies, check_reader, check_signed, fresh_pump, raw_frame,
                      results_of, signed_commands)
from pump import wire

FAST = settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def frames_and_garbage():
    good = st.dictionaries(st.sampled_from(["cmd", "a", "b"]), st.integers(0, 99) | st.text(max_size=5),
                           min_size=1, max_size=3)
    junk = st.binary(max_size=300)
    return st.lists(st.tuples(junk, good, st.integers(0, 65535)), max_size=8)


@FAST
@given(frames_and_garbage(), st.lists(st.integers(1, 64), min_size=1, max_size=8))
def test_the_reader_never_raises_and_finds_every_good_frame_among_garbage(items, cuts):
    data = b""
    want = []
    for junk, body, seq in items:
        data += junk + b"\n" + wire.encode(seq, body)
        want.append((seq, body))
    r = wire.Reader()
    got = []
    i = 0
    k = 0
    while i < len(data):  # in pieces, as a serial port hands them over
        n = cuts[k % len(cuts)]
        got += [(f.seq, f.body) for f in r.feed(data[i:i + n])]
        i += n
        k += 1
    assert got == want


@FAST
@given(st.binary(max_size=2000))
def test_the_reader_survives_any_bytes_however_they_are_cut(data):
    check_reader(data)


@FAST
@given(st.lists(bodies(), min_size=1, max_size=4))
def test_any_command_body_gets_one_result_and_changes_nothing_unless_signed(items):
    check_any_bodies(items)


@FAST
@given(st.lists(signed_commands(), min_size=1, max_size=3))
def test_validly_signed_commands_with_any_values_are_answered_without_a_crash(cmds):
    check_signed(cmds)


@FAST
@given(st.sampled_from(["bolus", "program", "limits"]), st.dictionaries(st.text(max_size=5), st.floats(), min_size=1))
def test_a_float_where_a_signature_should_be_is_refused_not_a_crash(cmd, args):
    # no host can sign a float (the pump's JSON has none); the pump must still answer
    p = fresh_pump()
    body = {"cmd": cmd, "args": args, "auth": {"role": "clinician", "ctr": 1, "mac": "0" * 64}}
    p.received(NOW, raw_frame(1, body))
    (r,) = results_of(p)
    assert r["code"] in ("bad_request", "auth_failed")
