"""Host side of the telemetry link: a serial port in, the pump's frames out, commands back.

The frame format is the firmware's own (firmware/pump/wire.py, imported, not copied), so
host and pump cannot drift apart. Works the same on a Pico's /dev/ttyACM0 and on the
simulated Pico's pty (tools/simpico.py).
"""
from __future__ import annotations

import errno
import os
import select
import sys
import time
from typing import Any

import serial  # pyserial

_FIRMWARE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware")
if _FIRMWARE not in sys.path:
    sys.path.append(_FIRMWARE)  # appended: firmware module names must not shadow the host's

from pump import wire  # noqa: E402

READ_CHUNK_BYTES = 65536
REQUEST_TIMEOUT_S = 3.0


class LinkClosed(Exception):
    """The port went away: the Pico was unplugged, or the simulator stopped."""


class RequestTimeout(Exception):
    """No result frame answered a command in time."""


class Reply:
    # A command's result frame and everything that arrived while waiting for it.
    def __init__(self, result: dict[str, Any], frames: list[wire.Frame]) -> None:
        self.result = result
        self.frames = frames

    @property
    def ok(self) -> bool:
        return self.result.get("ok") is True

    def last(self, kind: str) -> dict[str, Any] | None:
        # The newest frame body of type `kind` ("status", "event") among self.frames.
        for frame in reversed(self.frames):
            if frame.body.get("t") == kind:
                return frame.body
        return None


class Link:
    def __init__(self, port: str, baudrate: int = 115200) -> None:
        # The baud rate means nothing to USB CDC or a pty; pyserial wants one anyway.
        # pyserial's open() discards input already waiting, so the first bytes read may
        # start mid-frame: the wire reader resynchronises at the next "~" or newline.
        self.port = port
        self.serial = serial.Serial(port, baudrate=baudrate, timeout=0, write_timeout=2)
        self.fd = self.serial.fileno()
        os.set_blocking(self.fd, False)
        self._poll = select.poll()
        self._poll.register(self.fd, select.POLLIN)
        self.reader = wire.Reader()
        self.frames_in = 0
        self.frames_lost = 0  # gaps in the pump's sequence numbers
        self.bytes_in = 0
        self.last_frame_at: float | None = None  # time.monotonic()
        self.closed = False
        self._last_seq: int | None = None
        # Start from the clock so two console runs in a row do not reuse sequence numbers.
        self._tx_seq = int(time.time() * 1000) % wire.SEQ_MODULO

    # -- health counters of the incoming byte stream
    @property
    def bad_crc(self) -> int:
        return self.reader.bad_crc

    @property
    def bad_format(self) -> int:
        return self.reader.bad_format + self.reader.oversize

    @property
    def garbage_bytes(self) -> int:
        return self.reader.garbage_bytes

    # -- receiving
    def receive(self, timeout_s: float = 0.0) -> list[wire.Frame]:
        # Frames that arrived, waiting up to timeout_s for the first bytes. Raises
        # LinkClosed once the port has hung up and nothing is left to read.
        if self.closed:
            raise LinkClosed(self.port)
        frames: list[wire.Frame] = []
        wait_ms = int(timeout_s * 1000)
        while True:
            ready = self._poll.poll(wait_ms)
            if not ready:
                return frames
            # os.read, not serial.read: pyserial's read after a poll can sit on data in
            # its own buffer; a plain read takes what the kernel has, now.
            try:
                data = os.read(self.fd, READ_CHUNK_BYTES)
            except BlockingIOError:
                return frames
            except OSError as e:
                if e.errno != errno.EIO:
                    raise
                data = b""  # EIO on a tty: the other side hung up
            if not data:
                self.closed = True
                if frames:
                    return frames
                raise LinkClosed(self.port)
            self.bytes_in += len(data)
            frames.extend(self._accept(self.reader.feed(data)))
            wait_ms = 0

    def _accept(self, frames: list[wire.Frame]) -> list[wire.Frame]:
        if frames:
            self.last_frame_at = time.monotonic()
        for frame in frames:
            if self._last_seq is not None:
                gap = (frame.seq - self._last_seq - 1) % wire.SEQ_MODULO
                # A huge "gap" is the pump restarting its count (a reboot), not a loss.
                if gap < wire.SEQ_MODULO // 2:
                    self.frames_lost += gap
            self._last_seq = frame.seq
            self.frames_in += 1
        return frames

    # -- sending
    def send(self, body: dict[str, Any]) -> int:
        # Sends one command frame; returns its sequence number (the result's "re").
        seq = self._tx_seq
        self._tx_seq = (seq + 1) % wire.SEQ_MODULO
        data = wire.encode(seq, body)
        try:
            self.serial.write(data)
        except (serial.SerialException, OSError) as e:
            raise LinkClosed("%s: %s" % (self.port, e)) from None
        return seq

    def request(self, body: dict[str, Any], timeout_s: float = REQUEST_TIMEOUT_S) -> Reply:
        # Send a command and wait for the result frame whose "re" is its seq.
        seq = self.send(body)
        seen: list[wire.Frame] = []
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RequestTimeout("%s: no result for %s (seq %d) within %.1f s" % (
                    self.port, body.get("cmd"), seq, timeout_s))
            for frame in self.receive(min(left, 0.1)):
                seen.append(frame)
                b = frame.body
                if b.get("t") == "result" and b.get("re") == seq and b.get("cmd") == body.get("cmd"):
                    return Reply(b, seen)

    def status(self, timeout_s: float = REQUEST_TIMEOUT_S) -> dict[str, Any]:
        # The pump's status, fresh: it answers {"cmd":"status"} with a status frame
        # followed by the result.
        reply = self.request({"cmd": "status"}, timeout_s)
        status = reply.last("status")
        if not reply.ok or status is None:
            raise RequestTimeout("%s: status refused: %s" % (self.port, reply.result))
        return status

    def close(self) -> None:
        try:
            self.serial.close()
        except (serial.SerialException, OSError):
            pass
        self.closed = True

    def __enter__(self) -> "Link":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
