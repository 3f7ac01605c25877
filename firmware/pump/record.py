# Frames built in place: a preallocated buffer the state snapshot is written into, digit by
# digit, so that a state write costs the heap almost nothing (a memoryview for the CRC)
# however often it runs.
#
# The bytes are ordinary frames of pump.wire (`~1 <seq> <body> <crc>\n`, the body JSON
# with sorted keys and no spaces), so pump.wire.Reader reads them back. Two rules:
# 1. Only small ints, fixed ASCII literals and lists of them are written: the caller
#    spells the JSON (keys in sorted order) with raw(), and no value needs escaping.
# 2. The buffer is never outgrown: each record's callers size it from the bounds of what
#    they write (pump.persist), and a write past the end raises IndexError rather than
#    allocating.
import binascii

_HEX = b"0123456789abcdef"


class Out:
    def __init__(self, size):
        self.buf = bytearray(size)
        self.n = 0
        self._start = 0

    def raw(self, data):
        # ASCII bytes as they are
        buf = self.buf
        n = self.n
        i = 0
        while i < len(data):
            buf[n] = data[i]
            n += 1
            i += 1
        self.n = n

    def int(self, x):
        # a small int in decimal
        buf = self.buf
        if x < 0:
            buf[self.n] = 45  # "-"
            self.n += 1
            x = -x
        digits = 1
        t = x
        while t >= 10:
            t //= 10
            digits += 1
        n = self.n + digits
        self.n = n
        while digits:
            n -= 1
            buf[n] = 48 + x % 10
            x //= 10
            digits -= 1

    def ints(self, values):
        # a JSON list of small ints (values: a list or a tuple)
        self.raw(b"[")
        i = 0
        while i < len(values):
            if i:
                self.raw(b",")
            self.int(values[i])
            i += 1
        self.raw(b"]")

    def lists(self, rows):
        # a JSON list of lists of small ints
        self.raw(b"[")
        i = 0
        while i < len(rows):
            if i:
                self.raw(b",")
            self.ints(rows[i])
            i += 1
        self.raw(b"]")

    def begin(self, seq):
        # a frame's head; its body follows
        self._start = self.n
        self.raw(b"~1 ")
        self.int(seq)
        self.raw(b" ")

    def end(self):
        # the CRC-32 of the frame so far, as 8 lowercase hex digits, and the newline. Taken
        # in two halves, so no local holds a 32-bit number (a long int on the RP2040).
        self.raw(b" ")
        self._hex4((binascii.crc32(memoryview(self.buf)[self._start:self.n]) >> 16) & 0xFFFF)
        self._hex4(binascii.crc32(memoryview(self.buf)[self._start:self.n - 4]) & 0xFFFF)
        self.raw(b"\n")

    def _hex4(self, x):
        buf = self.buf
        n = self.n + 4
        self.n = n
        while n > self.n - 4:
            n -= 1
            buf[n] = _HEX[x & 15]
            x >>= 4
