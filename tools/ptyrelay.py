"""Relay between two pty masters: a firmware that never blocks, clients that come and go.

The firmware's stdin/stdout is the slave of one pseudo-terminal; clients open the slave of
another. Relay (a thread) moves bytes between the two masters. It always drains the
firmware, so the firmware never blocks on a write whoever reads; it forwards what an
attached client takes, up to a bounded backlog, and drops output while no client has
the port open, as a Pico's USB serial output is lost when no host reads it. It keeps the
tail of the firmware's output and stderr, for reporting why a firmware died.
"""
from __future__ import annotations

import errno
import os
import select
import threading

BACKLOG_MAX_BYTES = 1 << 20  # per direction; a reader that lags further loses the oldest
STDERR_KEEP_BYTES = 64 * 1024  # the tail of the firmware's stderr kept for reports
OUTPUT_KEEP_BYTES = 16 * 1024  # and of its stdout: MicroPython prints tracebacks there
READ_CHUNK_BYTES = 65536
DETACHED_POLL_S = 0.05  # how soon a newly attached client starts receiving


class RelayStats:
    def __init__(self) -> None:
        self.from_firmware_bytes = 0
        self.to_client_bytes = 0
        self.dropped_bytes = 0  # firmware output nobody took (no client, or backlog full)
        self.to_firmware_bytes = 0
        self.attaches = 0
        self.detaches = 0


class Relay(threading.Thread):
    # Moves bytes between the firmware's pty master and the clients' pty master.
    def __init__(self, fw_fd: int, client_fd: int) -> None:
        super().__init__(name="simpico-relay", daemon=True)
        self.fw_fd = fw_fd
        self.client_fd = client_fd
        self.stats = RelayStats()
        self.attached = False
        self.fw_open = True
        self.drained = threading.Event()  # firmware gone and its output all handed over
        self._to_client = bytearray()
        self._to_fw = bytearray()
        self._stderr_fd: int | None = None
        self._stderr = bytearray()
        self._output = bytearray()
        self._stderr_lock = threading.Lock()
        self._stopping = False
        self._wake_r, self._wake_w = os.pipe()
        self._probe = select.poll()
        self._probe.register(client_fd, select.POLLIN)
        for fd in (fw_fd, client_fd, self._wake_r, self._wake_w):
            os.set_blocking(fd, False)

    # -- called from other threads
    def watch_stderr(self, fd: int) -> None:
        self._stderr_fd = fd
        self._wake()

    def stderr_text(self) -> str:
        with self._stderr_lock:
            return self._stderr.decode("utf-8", "replace")

    def output_tail(self) -> bytes:
        with self._stderr_lock:
            return bytes(self._output)

    def stop(self) -> None:
        self._stopping = True
        self._wake()

    def close(self) -> None:
        # After join(). Numbers set to -1 so a second close or wake touches no fd that
        # the process has since reused.
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._wake_r = self._wake_w = -1

    def _wake(self) -> None:
        if self._wake_w < 0:
            return
        try:
            os.write(self._wake_w, b"x")
        except OSError:
            pass  # pipe full: the relay is already due to wake

    # -- the relay thread
    def run(self) -> None:
        try:
            self._loop()
        finally:
            # Whoever waits for the end must not wait for ever if the relay itself failed.
            self.fw_open = False
            self.drained.set()

    def _loop(self) -> None:
        while not self._stopping:
            if not self.attached:
                self._check_attach()
            poll = select.poll()
            poll.register(self._wake_r, select.POLLIN)
            if self.fw_open:
                poll.register(self.fw_fd, select.POLLIN | (select.POLLOUT if self._to_fw else 0))
            if self._stderr_fd is not None:
                poll.register(self._stderr_fd, select.POLLIN)
            if self.attached:
                poll.register(self.client_fd,
                              select.POLLIN | (select.POLLOUT if self._to_client else 0))
            # Detached, the client master reports POLLHUP at once, so it stays out of the
            # set and is probed on a timer instead.
            timeout_ms = None if self.attached else int(DETACHED_POLL_S * 1000)
            for fd, ev in poll.poll(timeout_ms):
                if fd == self._wake_r:
                    self._drain_wake()
                elif fd == self.fw_fd:
                    self._on_firmware(ev)
                elif fd == self._stderr_fd:
                    self._on_stderr()
                elif fd == self.client_fd:
                    self._on_client(ev)
            if not self.fw_open and not (self.attached and self._to_client):
                self.drained.set()

    def _drain_wake(self) -> None:
        try:
            os.read(self._wake_r, 4096)
        except OSError:
            pass

    def _check_attach(self) -> None:
        # A pty master reports POLLHUP while no process has the slave open.
        ready = self._probe.poll(0)
        if not ready or not ready[0][1] & select.POLLHUP:
            self.attached = True
            self.stats.attaches += 1

    def _detach(self) -> None:
        self.attached = False
        self.stats.detaches += 1
        self.stats.dropped_bytes += len(self._to_client)
        self._to_client.clear()

    def _on_firmware(self, ev: int) -> None:
        if ev & select.POLLOUT and self._to_fw:
            try:
                n = os.write(self.fw_fd, self._to_fw)
                del self._to_fw[:n]
            except BlockingIOError:
                pass
            except OSError:
                self._to_fw.clear()
        if not ev & (select.POLLIN | select.POLLHUP | select.POLLERR):
            return
        try:
            data = os.read(self.fw_fd, READ_CHUNK_BYTES)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            data = b""  # EIO: the firmware's side of the pty is closed, it has exited
        if not data:
            self.fw_open = False
            self._to_fw.clear()
            return
        self.stats.from_firmware_bytes += len(data)
        with self._stderr_lock:
            self._output += data
            over = len(self._output) - OUTPUT_KEEP_BYTES
            if over > 0:
                del self._output[:over]
        if not self.attached:
            self._check_attach()  # a client that opened the port a moment ago gets this
        if not self.attached:
            self.stats.dropped_bytes += len(data)
            return
        self._to_client += data
        over = len(self._to_client) - BACKLOG_MAX_BYTES
        if over > 0:
            # Keep the newest: a client that catches up wants the current state, and the
            # frame reader resynchronises at the cut.
            del self._to_client[:over]
            self.stats.dropped_bytes += over
        self._flush_client()

    def _flush_client(self) -> None:
        while self._to_client:
            try:
                n = os.write(self.client_fd, self._to_client)
            except BlockingIOError:
                return
            except OSError:
                self._detach()
                return
            self.stats.to_client_bytes += n
            del self._to_client[:n]

    def _on_client(self, ev: int) -> None:
        if ev & select.POLLOUT:
            self._flush_client()
        if ev & select.POLLIN:
            try:
                data = os.read(self.client_fd, READ_CHUNK_BYTES)
            except BlockingIOError:
                data = None
            except OSError:
                data = b""
            if data:
                if self.fw_open and len(self._to_fw) + len(data) <= BACKLOG_MAX_BYTES:
                    self._to_fw += data
                    self.stats.to_firmware_bytes += len(data)
                    try:
                        n = os.write(self.fw_fd, self._to_fw)
                        del self._to_fw[:n]
                    except BlockingIOError:
                        pass
                    except OSError:
                        self._to_fw.clear()
                return
            if data == b"":
                self._detach()
                return
        if ev & (select.POLLHUP | select.POLLERR) and self.attached:
            self._detach()

    def _on_stderr(self) -> None:
        fd = self._stderr_fd
        assert fd is not None
        try:
            data = os.read(fd, READ_CHUNK_BYTES)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._stderr_fd = None  # EOF: the firmware has exited
            return
        with self._stderr_lock:
            self._stderr += data
            over = len(self._stderr) - STDERR_KEEP_BYTES
            if over > 0:
                del self._stderr[:over]
