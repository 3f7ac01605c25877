# HAL link over the process's stdin/stdout: USB CDC on the Pico, a pseudo-terminal for
# the simulated Pico. Binary streams (text mode would turn "\n" into "\r\n").
import select
import sys
import time

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

READ_MAX = const(512)  # bytes taken per read() so one flood cannot starve the loop


class StdioLink:
    def __init__(self, stdin=None, stdout=None):
        self._in = stdin or sys.stdin.buffer
        self._out = stdout or sys.stdout.buffer
        self._poll = select.poll()
        self._poll.register(self._in, select.POLLIN)
        self.closed = False

    def read(self):
        # A stream read(n) blocks until n bytes arrive, so take one byte per ready poll.
        if self.closed:
            return b""
        got = b""
        poll = self._poll
        stream = self._in
        for _ in range(READ_MAX):
            ready = poll.poll(0)
            if not ready:
                break
            if ready[0][1] & (select.POLLHUP | select.POLLERR) and not ready[0][1] & select.POLLIN:
                self.closed = True
                break
            byte = stream.read(1)
            if not byte:
                self.closed = True
                break
            got += byte
        if self.closed:
            # End of input (the host went away): stop polling a stream that would report
            # "ready" for ever. Therapy and output carry on regardless.
            self._poll.unregister(self._in)
        return got

    def wait(self, timeout_ms):
        # True when input is waiting (used by boards that sleep on the link).
        if self.closed:
            if timeout_ms > 0:
                _sleep_ms(timeout_ms)
            return False
        ready = self._poll.poll(timeout_ms)
        return bool(ready)

    def write(self, data):
        try:
            self._out.write(data)
            if hasattr(self._out, "flush"):
                self._out.flush()
        except OSError:
            pass  # nobody listening: telemetry is best effort, therapy goes on


def _sleep_ms(ms):
    try:
        time.sleep_ms(ms)
    except AttributeError:
        time.sleep(ms / 1000)


class NullLink:
    # No link at all (benchmarks, scripted runs).
    def read(self):
        return b""

    def wait(self, timeout_ms):
        return False

    def write(self, data):
        pass
