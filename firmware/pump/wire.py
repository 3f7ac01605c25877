# Frames on the telemetry link and in stored files: versioned, sequenced, CRC-checked lines.
#
#   ~1 <seq> <body> <crc>\n
#
# `1` is the protocol version, <seq> a decimal 0..65535 that wraps, <body> a JSON object
# with sorted keys and no spaces (so both runtimes produce identical bytes; "~" only as
# the escape \u007e, so that a frame holds no "~" but its first byte), <crc> the
# CRC-32 of everything from "~" up to and including the space before it, as 8 lowercase
# hex digits. A reader resynchronises at every "~" and every newline, so garbage, a torn
# frame or a REPL banner costs only the frame it touches. docs/protocol.md is the schema.
import binascii
import json

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

VERSION = const(1)
MAX_FRAME = const(4096)  # bytes, "~" through "\n": a full week of flex steps fits
SEQ_MODULO = const(65536)


def dumps(obj):
    # Deterministic compact JSON: sorted keys, no floats (drug accounting is integral).
    out = []
    _dump(obj, out)
    return "".join(out)


def _dump(obj, out):
    t = type(obj)
    if t is int:
        out.append(str(obj))
    elif t is dict:
        # Keys are the core's own ASCII identifiers, which the C json.dumps of both
        # runtimes writes identically (and fast); values go through _string.
        sep = "{"
        for k in sorted(obj):
            out.append(sep)
            out.append(json.dumps(k))
            out.append(":")
            _dump(obj[k], out)
            sep = ","
        out.append("}" if sep == "," else "{}")
    elif t is str:
        out.append(_string(obj))
    elif t is list or t is tuple:
        sep = "["
        for v in obj:
            out.append(sep)
            _dump(v, out)
            sep = ","
        out.append("]" if sep == "," else "[]")
    elif obj is None:
        out.append("null")
    elif obj is True:
        out.append("true")
    elif obj is False:
        out.append("false")
    else:
        raise TypeError("cannot encode " + str(t))


def _string(s):
    # ASCII-only output, escaped the same way on MicroPython and CPython.
    for ch in s:
        if not " " <= ch <= "}" or ch == '"' or ch == "\\":  # ("~" is "}" + 1)
            break
    else:
        return '"' + s + '"'  # nothing to escape: the common case, no list of characters
    out = ['"']
    for ch in s:
        c = ord(ch)
        if ch == '"' or ch == "\\":
            out.append("\\" + ch)
        elif ch == "~":
            out.append("\\u007e")  # "~" starts a frame: never inside one
        elif 0x20 <= c < 0x7F:
            out.append(ch)
        elif c < 0x10000:
            out.append("\\u%04x" % c)
        else:
            c -= 0x10000
            out.append("\\u%04x\\u%04x" % (0xD800 | (c >> 10), 0xDC00 | (c & 0x3FF)))
    out.append('"')
    return "".join(out)


def encode(seq, body):
    head = "~%d %d %s " % (VERSION, seq, dumps(body))
    b = head.encode()
    return b + (b"%08x\n" % (binascii.crc32(b) & 0xFFFFFFFF))


class Frame:
    # One decoded frame: seq (int) and body (dict).
    def __init__(self, seq, body):
        self.seq = seq
        self.body = body


class Reader:
    # Bytes in, frames out. Counts what it had to throw away.
    def __init__(self, max_frame=MAX_FRAME):
        self._buf = bytearray()
        self._max = max_frame
        self._skipping = False  # inside an oversized frame: drop up to the next newline
        self.frames = []
        self.bad_crc = 0
        self.bad_format = 0
        self.oversize = 0
        self.garbage_bytes = 0

    def feed(self, data):
        # Returns the list of complete frames found (also kept in self.frames until taken).
        for byte in data:
            if byte == 0x7E:  # "~" starts a frame, abandoning any partial one
                if self._buf:
                    self.bad_format += 1
                self._buf = bytearray(b"~")
                self._skipping = False
            elif byte == 0x0A:  # "\n" ends one
                if self._buf:
                    self._finish()
                self._buf = bytearray()
                self._skipping = False
            elif self._skipping:
                pass
            elif self._buf:
                if len(self._buf) >= self._max - 1:
                    self.oversize += 1
                    self._buf = bytearray()
                    self._skipping = True
                else:
                    self._buf.append(byte)
            else:
                self.garbage_bytes += 1
        out = self.frames
        self.frames = []
        return out

    def _finish(self):
        buf = bytes(self._buf)
        if len(buf) < 12 or buf[-9] != 0x20:
            self.bad_format += 1
            return
        # compared as text, so "D" for "d" (or any other spelling) is an error too
        if b"%08x" % (binascii.crc32(buf[:-8]) & 0xFFFFFFFF) != buf[-8:]:
            self.bad_crc += 1
            return
        try:
            text = buf[1:-9].decode()
            sp1 = text.index(" ")
            sp2 = text.index(" ", sp1 + 1)
            version = int(text[:sp1])
            seq = int(text[sp1 + 1:sp2])
            body = json.loads(text[sp2 + 1:])
        except (ValueError, UnicodeError):
            self.bad_format += 1
            return
        if version != VERSION or not 0 <= seq < SEQ_MODULO or type(body) is not dict:
            self.bad_format += 1
            return
        self.frames.append(Frame(seq, body))


class LinkStats:
    # What the pump's command handling rejected, beside what the Reader dropped.
    def __init__(self):
        self.frames = 0
        self.out_of_order = 0
        self.seq_gaps = 0
        self.unknown_command = 0
        self.bad_request = 0
        self.auth_failed = 0
