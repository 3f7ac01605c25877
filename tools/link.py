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
from typing import Any, Callable

import serial  # pyserial

_FIRMWARE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware")
if _FIRMWARE not in sys.path:
    sys.path.append(_FIRMWARE)  # appended: firmware module names must not shadow the host's

from pump import wire  # noqa: E402

READ_CHUNK_BYTES = 65536
REQUEST_TIMEOUT_S = 3.0
LOG_IDLE_TIMEOUT_S = 10.0  # a log export fails only when this long passes without a record


class LinkClosed(Exception):
    """The port went away: the Pico was unplugged, or the simulator stopped."""


class RequestTimeout(Exception):
    """No result frame answered a command in time."""


class CommandError(Exception):
    """The pump did not do what was asked. `result` is its answer ({} if none came),
    `code` its code; the message says what went wrong and what to do."""

    def __init__(self, message: str, result: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result or {}
        self.code = self.result.get("code")
        self.reason = self.result.get("reason")


class NotProvisioned(CommandError):
    """No key for this pump and role: on the host (the key store) or on the pump."""


class AuthFailed(CommandError):
    """The pump did not authenticate the command (`reason`: bad_mac, stale_counter,
    wrong_role, no_key, locked_out; `retry_in_ms` during a lockout)."""


class Refused(CommandError):
    """Authenticated, but the pump's therapy checks refused it (`reason`, `field`,
    `limit`, `retry_in_ms`)."""


def wait_text(ms: int) -> str:
    # A time to wait, rounded up, as a person reads it: "45 s", "3 min", "2 h 14 min".
    s = max(0, -(-int(ms) // 1000))
    if s < 60:
        return "%d s" % s
    m = -(-s // 60)
    if m < 60:
        return "%d min" % m
    h, m = divmod(m, 60)
    if h < 48:
        return "%d h %d min" % (h, m) if m else "%d h" % h
    d, h = divmod(h, 24)
    return "%d d %d h" % (d, h) if h else "%d d" % d


_AUTH_REASONS = {
    "bad_mac": "its signature did not match: the key store's %(role)s key for this pump is not the one "
               "the pump holds (was it provisioned again from another console?). Provision the pump "
               "again, or use the key store that holds its current keys",
    "stale_counter": "its counter was not above the last one the pump accepted for the %(role)s role: a "
                     "replayed command, or another console with the same key got there first. Try again",
    "wrong_role": "the %(role)s role may not give `%(cmd)s`%(hint)s",
    "no_key": "the pump holds no %(role)s key. Provision it with that role "
              "(python -m tools.console provision --roles ...)",
    "locked_out": "the pump is locked out after repeated authentication failures%(retry)s. Therapy goes "
                  "on meanwhile; check that this console holds the pump's current keys",
}


def explain(result: dict[str, Any], role: str | None = None) -> CommandError:
    # The pump's non-ok result as an exception whose message a user can act on.
    code = result.get("code")
    cmd = result.get("cmd") or "the command"
    reason = result.get("reason")
    retry = result.get("retry_in_ms")
    retry_text = "; try again in %s" % wait_text(retry) if type(retry) is int and retry > 0 else ""
    if code == "auth_failed":
        hint = " (use --role clinician)" if role == "patient" else ""
        template = _AUTH_REASONS.get(str(reason), "reason %r" % (reason,))
        text = template % {"role": role or "given", "cmd": cmd, "hint": hint, "retry": retry_text}
        cls: type[CommandError] = NotProvisioned if reason == "no_key" else AuthFailed
        return cls("the pump did not accept `%s`: %s" % (cmd, text), result)
    if code == "refused":
        parts = [str(reason or "no reason given")]
        if result.get("field"):
            parts.append("field %s" % result["field"])
        if result.get("limit"):
            parts.append("hard limit %s" % result["limit"])
        return Refused("the pump refused `%s`: %s%s" % (cmd, "; ".join(parts), retry_text), result)
    if code == "bad_request":
        field = result.get("field")
        return CommandError("the pump rejected the arguments of `%s`: %s%s" % (
            cmd, reason, " (field %s)" % field if field else ""), result)
    if code == "unknown_command":
        return CommandError("the pump does not know `%s`: its firmware is older than this console" % cmd, result)
    if code == "auth_required":
        return CommandError("the pump wants `%s` authenticated" % cmd, result)
    if code == "busy":
        return CommandError("the pump is busy with `%s` already (%s): try again when it is done" % (
            cmd, reason or "busy"), result)
    if code == "out_of_order":
        return CommandError("the pump took `%s` for a stale frame (out_of_order); run the command again" % cmd,
                            result)
    return CommandError("the pump answered `%s` with %s: %s" % (cmd, code, result), result)


class LogExport:
    # What a `log` command brought back: the records (frame bodies, "t": "log"), the
    # pump's result (`records`, `corrupt`), and the stored log's size from `log_start`.
    def __init__(self, records: list[dict[str, Any]], result: dict[str, Any], total_bytes: int | None) -> None:
        self.records = records
        self.result = result
        self.total_bytes = total_bytes

    @property
    def missing(self) -> int:
        # records the pump sent that did not arrive intact (0 when all came)
        sent = self.result.get("records")
        return sent - len(self.records) if type(sent) is int and sent > len(self.records) else 0


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
    # keys: a tools.keystore.KeyStore, needed for commands that change therapy.
    def __init__(self, port: str, baudrate: int = 115200, keys: Any = None, transport: Any = None) -> None:
        # transport: what to talk through (fileno, write, close), else tools.port.open_port:
        # the session that serves the port, or the port itself, opened exclusively
        # (PortError says why it cannot be). pyserial's open() discards input already
        # waiting, so the first bytes read may start mid-frame: the wire reader
        # resynchronises at the next "~" or newline.
        self.port = port
        if transport is None:
            from tools.port import open_port
            transport = open_port(port, baudrate)
        self.serial = transport
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
        self.keys = keys
        self.frames_out = 0
        # The session (docs/protocol.md, hello): None until hello was sent; then the
        # pump's answer ({} from a firmware without hello).
        self.session: dict[str, Any] | None = None
        self.pump_ctr: dict[str, int] = {}

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
        self.frames_out += 1
        data = wire.encode(seq, body)
        try:
            self.serial.write(data)
        except (serial.SerialException, OSError) as e:
            raise LinkClosed("%s: %s" % (self.port, e)) from None
        return seq

    def request(self, body: dict[str, Any], timeout_s: float = REQUEST_TIMEOUT_S,
                on_frame: Callable[[wire.Frame, int], None] | None = None,
                idle_timeout: bool = False) -> Reply:
        # Send a command and wait for the result frame whose "re" is its seq. The first
        # frame of this link is a hello, which starts a session (unless the caller sent
        # frames of its own first). A frame the pump took for a stale one (out_of_order:
        # it did nothing) is sent once more in a new session.
        if self.session is None and self.frames_out == 0 and body.get("cmd") != "hello":
            self.hello(timeout_s)
        reply = self._exchange(body, timeout_s, on_frame, idle_timeout)
        if reply.result.get("code") == "out_of_order" and body.get("cmd") != "hello":
            self.hello(timeout_s)
            reply = self._exchange(body, timeout_s, on_frame, idle_timeout)
        return reply

    def _exchange(self, body: dict[str, Any], timeout_s: float,
                  on_frame: Callable[[wire.Frame, int], None] | None = None,
                  idle_timeout: bool = False) -> Reply:
        # One frame out, frames in until its result. on_frame(frame, seq) sees every frame
        # that arrives meanwhile; with idle_timeout, each frame restarts the timeout.
        seq = self.send(body)
        seen: list[wire.Frame] = []
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise RequestTimeout("%s: no result for %s (seq %d) within %.1f s" % (
                    self.port, body.get("cmd"), seq, timeout_s))
            frames = self.receive(min(left, 0.1))
            if frames and idle_timeout:
                deadline = time.monotonic() + timeout_s
            for frame in frames:
                if on_frame is not None:
                    on_frame(frame, seq)
                else:
                    seen.append(frame)
                b = frame.body
                if b.get("t") == "result" and b.get("re") == seq and b.get("cmd") == body.get("cmd"):
                    if on_frame is not None:
                        seen.append(frame)
                    return Reply(b, seen)

    def hello(self, timeout_s: float = REQUEST_TIMEOUT_S) -> dict[str, Any]:
        # Start a session: the pump accepts hello with any seq and counts from it. Its
        # answer names the pump (dev), its firmware, the roles it holds keys for and the
        # last counters it accepted. A firmware without hello answers unknown_command:
        # then {} (it still answers status).
        reply = self._exchange({"cmd": "hello"}, timeout_s)
        result = reply.result
        if result.get("code") == "unknown_command":
            self.session = {}
            return {}
        if not reply.ok:
            raise explain(result)
        self.session = result
        ctr = result.get("ctr")
        self.pump_ctr = {k: v for k, v in ctr.items() if type(v) is int} if isinstance(ctr, dict) else {}
        return result

    @property
    def dev(self) -> str | None:
        dev = (self.session or {}).get("dev")
        return dev if isinstance(dev, str) else None

    def command(self, cmd: str, args: dict[str, Any] | None = None, role: str = "clinician",
                timeout_s: float = REQUEST_TIMEOUT_S) -> Reply:
        # A command that changes therapy, signed with this pump's key for `role` from the
        # key store (its counter saved there before it is sent). Returns the Reply when
        # the pump answered ok; raises CommandError (NotProvisioned, AuthFailed, Refused)
        # saying why not otherwise.
        from tools.keystore import NoKey
        args = {} if args is None else args
        if self.session is None:
            self.hello(timeout_s)
        dev = self.dev
        if dev is None:
            raise CommandError("the pump on %s did not answer hello: its firmware takes no commands" % self.port)
        if self.keys is None:
            raise NotProvisioned("no key store: this console cannot sign commands for pump %s" % dev)
        for attempt in range(2):
            try:
                auth = self.keys.sign(dev, role, cmd, args, self.pump_ctr.get(role, 0))
            except NoKey as e:
                raise NotProvisioned(str(e)) from None
            reply = self.request({"cmd": cmd, "args": args, "auth": auth}, timeout_s)
            result = reply.result
            if reply.ok:
                self.pump_ctr[role] = auth["ctr"]
                return reply
            if attempt == 0 and result.get("code") == "auth_failed" and result.get("reason") == "stale_counter":
                # Another console with this key got further: learn the pump's counters
                # and sign again (a new counter, so never a replay).
                self.hello(timeout_s)
                continue
            raise explain(result, role)
        raise AssertionError("unreachable")

    def wait_for(self, match: Callable[[dict[str, Any]], bool], timeout_s: float,
                 on_frame: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any] | None:
        # Frames until one whose body `match`es (returned), or None after timeout_s.
        deadline = time.monotonic() + timeout_s
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            for frame in self.receive(min(left, 0.1)):
                if on_frame is not None:
                    on_frame(frame.body)
                if match(frame.body):
                    return frame.body

    def status(self, timeout_s: float = REQUEST_TIMEOUT_S) -> dict[str, Any]:
        # The pump's status, fresh: it answers {"cmd":"status"} with a status frame
        # followed by the result.
        reply = self.request({"cmd": "status"}, timeout_s)
        status = reply.last("status")
        if not reply.ok or status is None:
            raise RequestTimeout("%s: status refused: %s" % (self.port, reply.result))
        return status

    def settings(self, timeout_s: float = REQUEST_TIMEOUT_S) -> dict[str, Any]:
        # The pump's settings (read-only): `program` (wire form, or None), `limits`,
        # `alarm_settings`, `clock`, as the fields of its result.
        reply = self.request({"cmd": "settings"}, timeout_s)
        if not reply.ok:
            raise explain(reply.result)
        return reply.result

    def log_export(self, progress: Callable[[int, int | None], None] | None = None,
                   idle_timeout_s: float = LOG_IDLE_TIMEOUT_S) -> LogExport:
        # The pump's event log, oldest record first. progress(bytes so far, bytes in
        # all or None) after each record; the sizes are the stored frames' (log_start).
        records: list[dict[str, Any]] = []
        before: list[dict[str, Any]] = []  # log frames before our log_start (none expected)
        total: list[int | None] = [None]
        started = [False]
        done = [0]

        def on_frame(frame: wire.Frame, seq: int) -> None:
            b = frame.body
            t = b.get("t")
            if t == "log_start" and b.get("re") == seq:
                started[0] = True
                size = b.get("bytes")
                total[0] = size if type(size) is int else None
                if progress is not None:
                    progress(0, total[0])
            elif t == "log":
                (records if started[0] else before).append(b)
                if started[0]:
                    done[0] += stored_size(b)
                    if progress is not None:
                        t0 = total[0]
                        progress(min(done[0], t0) if t0 is not None else done[0], t0)

        reply = self.request({"cmd": "log"}, idle_timeout_s, on_frame, idle_timeout=True)
        if not reply.ok:
            raise explain(reply.result)
        if not started[0]:
            records = before  # a pump that sends no log_start
        if progress is not None and total[0] is not None:
            progress(total[0], total[0])
        return LogExport(records, reply.result, total[0])

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


def stored_size(record: dict[str, Any]) -> int:
    # About the bytes a log record takes in the pump's log file: the event frame it was
    # stored as ("t": "event"; the seq's digits may differ by a few bytes).
    body = dict(record)
    body["t"] = "event"
    try:
        return len(wire.encode(0, body))
    except TypeError:
        return 0
