# Frames survive the link: round trip, resynchronisation after garbage, torn and oversized
# frames, bit errors; the encoding is byte-identical on both runtimes.
from pump import wire


def _feed_all(reader, data):
    out = []
    for f in reader.feed(data):
        out.append((f.seq, f.body))
    return out


def test_round_trip_and_known_bytes():
    body = {"t": "status", "n": -3, "s": "baclofen \u00b5", "l": [1, None, True, False]}
    frame = wire.encode(42, body)
    # the exact bytes are part of the protocol (docs/protocol.md): sorted keys, ASCII
    assert frame.startswith(b'~1 42 {"l":[1,null,true,false],"n":-3,"s":"baclofen \\u00b5","t":"status"} ')
    assert frame.endswith(b"\n") and len(frame) == len(frame.strip()) + 1
    assert _feed_all(wire.Reader(), frame) == [(42, body)]


def test_resync_after_garbage_and_torn_frames():
    a = wire.encode(1, {"t": "a"})
    b = wire.encode(2, {"t": "b"})
    r = wire.Reader()
    stream = b"\x00\xffnoise\r\n" + a[:7] + b"MicroPython v1.29\r\n>>> " + a + b[:5] + b + b"tail"
    got = _feed_all(r, stream)
    assert got == [(1, {"t": "a"}), (2, {"t": "b"})]
    assert r.bad_format >= 2  # the two torn frames


def test_byte_at_a_time_feeding():
    r = wire.Reader()
    frame = wire.encode(9, {"t": "x", "v": 12345})
    got = []
    for i in range(len(frame)):
        got += _feed_all(r, frame[i:i + 1])
    assert got == [(9, {"t": "x", "v": 12345})]


def test_every_single_bit_flip_is_rejected():
    frame = wire.encode(7, {"t": "status", "reservoir_nl": 19200250})
    for i in range(len(frame) - 1):  # the newline itself only ends the frame
        for bit in range(8):
            bad = bytearray(frame)
            bad[i] ^= 1 << bit
            r = wire.Reader()
            got = _feed_all(r, bytes(bad))
            assert got == [], (i, bit, bytes(bad))


def test_oversize_frames_are_dropped_and_counted_then_reading_resumes():
    r = wire.Reader(max_frame=64)
    big = wire.encode(1, {"t": "x" * 100})
    ok = wire.encode(2, {"t": "y"})
    assert _feed_all(r, big + ok) == [(2, {"t": "y"})]
    assert r.oversize == 1


def test_wrong_version_and_non_object_bodies_are_refused():
    import binascii
    for head in (b"~2 1 {} ", b"~1 1 [1] ", b"~1 70000 {} ", b"~1 x {} "):
        frame = head + (b"%08x\n" % (binascii.crc32(head) & 0xFFFFFFFF))
        r = wire.Reader()
        assert _feed_all(r, frame) == [], frame
        assert r.bad_format == 1


def test_floats_cannot_be_encoded():
    from check import raises
    raises(TypeError, wire.dumps, {"x": 0.5})
