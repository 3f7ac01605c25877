"""A shared session: one program holds a pump's port, any number of consoles watch and command it.

    python -m tools.console session --port /dev/ttyACM0      # or --sim ...: until Ctrl-C
    python -m tools.console watch --port /dev/ttyACM0        # in another terminal
    python -m tools.console bolus --port /dev/ttyACM0 ...    # and another: through the session

`console session` and `console watch` serve the port they hold on a Unix socket named
after it (`session_path`); a console given `--port` finds that socket and talks through
it (tools/port.py), so nothing changes for the user but that the port is shared.

Theory of operation. The server speaks the wire format on both sides (firmware/pump/
wire.py). Every frame from the pump goes to every client, except a command's answer
(`result`, `log_start`), which goes to the client that asked. Every frame from a client
goes to the pump under the server's own sequence number, so the pump sees one host
whose numbers only go up however many clients there are; the answer's `re` is turned
back into the client's number. A command's MAC does not cover the frame's sequence
number (docs/protocol.md), so renumbering keeps signatures valid, and each client signs
with its own keys: the session holds none.

Rules it keeps: a client never blocks the pump's side (a client that lags loses its
oldest frames beyond BACKLOG_BYTES, and its reader resynchronises); a client that goes
away takes only its pending answers with it; when the pump's port closes, every client
sees its connection close.
"""
from __future__ import annotations

import errno
import os
import select
import socket
import sys
import tempfile
import threading
import time
from typing import Any

_FIRMWARE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware")
if _FIRMWARE not in sys.path:
    sys.path.append(_FIRMWARE)  # appended: firmware module names must not shadow the host's

from pump import wire  # noqa: E402

BACKLOG_BYTES = 1 << 20  # per client
WRITE_TIMEOUT_S = 2.0
PENDING_MAX = 256  # commands in flight across all clients; the oldest is forgotten beyond
_ADDRESSED = ("result", "log_start")  # frames that answer one client's command


def session_dir() -> str:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    return os.path.join(base, "pump-console-%d" % os.getuid())


def session_path(port: str) -> str:
    # The socket of the session serving `port` (its real path: /dev/serial/by-id links
    # and the device they point to share one session).
    real = os.path.realpath(port)
    name = real.strip("/").replace("/", "_") or "port"
    return os.path.join(session_dir(), name + ".sock")


class SessionClient:
    # The client's end as tools.link.Link uses a port: fileno(), write(), close().
    def __init__(self, sock: socket.socket, path: str = "") -> None:
        self.sock = sock
        self.path = path
        self.shared = True  # tools.link reads it to tell the user the port is shared

    def fileno(self) -> int:
        return self.sock.fileno()

    def write(self, data: bytes) -> int:
        view = memoryview(data)
        deadline = time.monotonic() + WRITE_TIMEOUT_S
        while view:
            try:
                n = self.sock.send(view)
            except BlockingIOError:
                n = 0
            except OSError as e:
                raise OSError(e.errno or errno.EPIPE, "the session ended") from None
            view = view[n:]
            if view:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise OSError(errno.ETIMEDOUT, "the session does not take frames")
                select.select([], [self.sock], [], left)
        return len(data)

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def connect(port: str) -> SessionClient | None:
    # A connection to the session serving `port`, or None when none runs (a socket left
    # by a session that died is removed).
    path = session_path(port)
    if not os.path.exists(path):
        return None
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(path)
    except OSError as e:
        sock.close()
        if e.errno in (errno.ECONNREFUSED, errno.ENOENT):
            try:
                os.unlink(path)
            except OSError:
                pass
            return None
        raise
    return SessionClient(sock, path)


class _Client:
    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.reader = wire.Reader()
        self.out = bytearray()
        self.dropped = 0
        sock.setblocking(False)


class SessionServer(threading.Thread):
    """Serves one pump's port (a pyserial object, or anything with fileno/write) to the
    clients that connect to `path` (and to those handed in with add_client)."""

    def __init__(self, port: Any, port_name: str, listen: bool = True) -> None:
        super().__init__(name="pump-session", daemon=True)
        self.port = port
        self.port_name = port_name
        self.fd = port.fileno()
        os.set_blocking(self.fd, False)
        self.path = session_path(port_name) if listen else ""
        self.listener: socket.socket | None = None
        self.clients: dict[int, _Client] = {}
        self.reader = wire.Reader()
        self.tx_seq = int(time.time() * 1000) % wire.SEQ_MODULO
        self.pending: dict[int, tuple[_Client, int]] = {}  # our seq -> (client, its seq)
        self.closed = threading.Event()  # the pump's port closed (or stop())
        self.frames_from_pump = 0
        self.frames_to_pump = 0
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._lock = threading.Lock()
        if listen:
            self._listen()

    def _listen(self) -> None:
        os.makedirs(session_dir(), mode=0o700, exist_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            os.unlink(self.path)  # a socket left by a session that died (the port was free)
        except FileNotFoundError:
            pass
        old = os.umask(0o077)  # the socket reaches the pump: its owner's alone
        try:
            sock.bind(self.path)
        finally:
            os.umask(old)
        sock.listen(8)
        sock.setblocking(False)
        self.listener = sock

    # -- from other threads
    def add_client(self, sock: socket.socket) -> None:
        with self._lock:
            c = _Client(sock)
            self.clients[c.sock.fileno()] = c
        self._wake()

    def stop(self) -> None:
        self._stopping = True
        self._wake()

    def _wake(self) -> None:
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass

    # -- the thread
    def run(self) -> None:
        try:
            self._loop()
        finally:
            self._close_all()
            self.closed.set()

    def _loop(self) -> None:
        while not self._stopping:
            poll = select.poll()
            poll.register(self._wake_r, select.POLLIN)
            poll.register(self.fd, select.POLLIN)
            if self.listener is not None:
                poll.register(self.listener.fileno(), select.POLLIN)
            with self._lock:
                clients = list(self.clients.values())
            for c in clients:
                poll.register(c.sock.fileno(), select.POLLIN | (select.POLLOUT if c.out else 0))
            for fd, ev in poll.poll(1000):
                if fd == self._wake_r:
                    try:
                        os.read(self._wake_r, 4096)
                    except OSError:
                        pass
                elif fd == self.fd:
                    if not self._from_pump():
                        return
                elif self.listener is not None and fd == self.listener.fileno():
                    self._accept()
                else:
                    c = self.clients.get(fd)
                    if c is not None:
                        self._on_client(c, ev)

    def _accept(self) -> None:
        assert self.listener is not None
        try:
            sock, _ = self.listener.accept()
        except OSError:
            return
        self.add_client(sock)

    def _from_pump(self) -> bool:
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return True
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            data = b""  # EIO on a tty: the other side hung up
        if not data:
            return False
        for frame in self.reader.feed(data):
            self.frames_from_pump += 1
            body = frame.body
            re_ = body.get("re")
            if body.get("t") in _ADDRESSED and type(re_) is int and re_ in self.pending:
                client, their = self.pending[re_]
                if body.get("t") == "result":
                    del self.pending[re_]
                body = dict(body)
                body["re"] = their
                if client.sock.fileno() in self.clients:
                    self._queue(client, wire.encode(frame.seq, body))
                continue
            data = wire.encode(frame.seq, body)
            for c in list(self.clients.values()):
                self._queue(c, data)
        return True

    def _queue(self, c: _Client, data: bytes) -> None:
        c.out += data
        over = len(c.out) - BACKLOG_BYTES
        if over > 0:
            del c.out[:over]  # the oldest go; the client's reader resynchronises
            c.dropped += over
        self._flush(c)

    def _flush(self, c: _Client) -> None:
        while c.out:
            try:
                n = c.sock.send(c.out)
            except BlockingIOError:
                return
            except OSError:
                self._drop(c)
                return
            del c.out[:n]

    def _on_client(self, c: _Client, ev: int) -> None:
        if ev & select.POLLOUT:
            self._flush(c)
        if ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
            try:
                data = c.sock.recv(65536)
            except BlockingIOError:
                return
            except OSError:
                data = b""
            if not data:
                self._drop(c)
                return
            for frame in c.reader.feed(data):
                seq = self.tx_seq
                self.tx_seq = (seq + 1) % wire.SEQ_MODULO
                self.pending[seq] = (c, frame.seq)
                while len(self.pending) > PENDING_MAX:
                    del self.pending[next(iter(self.pending))]
                self._to_pump(wire.encode(seq, frame.body))

    def _to_pump(self, data: bytes) -> None:
        try:
            self.port.write(data)
            self.frames_to_pump += 1
        except Exception:  # the port is going: the read side sees it close
            pass

    def _drop(self, c: _Client) -> None:
        fd = c.sock.fileno()
        with self._lock:
            self.clients.pop(fd, None)
        self.pending = {k: v for k, v in self.pending.items() if v[0] is not c}
        try:
            c.sock.close()
        except OSError:
            pass

    def _close_all(self) -> None:
        for c in list(self.clients.values()):
            self._drop(c)
        if self.listener is not None:
            try:
                self.listener.close()
            except OSError:
                pass
            try:
                os.unlink(self.path)
            except OSError:
                pass
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass

    def attach(self) -> SessionClient:
        # A client inside this process (the watch that serves the port): a socket pair.
        mine, theirs = socket.socketpair()
        self.add_client(mine)
        return SessionClient(theirs, "")
