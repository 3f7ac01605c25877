"""Opening a pump's serial port: one program at a time, through a shared session if one runs,
and errors a user can act on instead of pyserial's.

A serial port carries one conversation: two programs reading it steal each other's
frames (a second console gets "no answer", or ends the first one's `watch`). So a port
is opened exclusively (an advisory lock that every console takes), and a console that
finds the port held by a session (tools/session.py: `console session`, or a running
`console watch`) talks through that session instead, so several consoles can watch and
command one pump at the same time.
"""
from __future__ import annotations

import errno
import os
import stat
from typing import Any


class PortError(OSError):
    """The port cannot be used; the message says why and what to do."""


def describe(path: str, e: BaseException) -> str:
    # pyserial's and the OS's words, as a user reads them
    err = getattr(e, "errno", None)
    text = str(e)
    if err == errno.ENOENT or "No such file" in text:
        return ("there is no serial port %s: is the pump plugged in (a Pico shows up as /dev/ttyACM0; "
                "`ls /dev/ttyACM*`), or is the simulated Pico running (python -m tools.simpico prints its "
                "port)?" % path)
    if err in (errno.EACCES, errno.EPERM) or "Permission denied" in text:
        return ("no permission to open %s: add yourself to the group that owns it "
                "(`sudo usermod -aG dialout $USER`, then log in again)" % path)
    if err == errno.ENOTTY or "Inappropriate ioctl" in text or "Could not configure port" in text:
        return "%s is not a serial port (a Pico's is /dev/ttyACM0, the simulated Pico's /dev/pts/N)" % path
    if err in (errno.EAGAIN, errno.EWOULDBLOCK) or "exclusively lock" in text:
        return ("%s is in use by another program (another console, mpremote, screen?): close it, or run the "
                "commands through one session (python -m tools.console session --port %s)" % (path, path))
    if err == errno.EBUSY:
        return "%s is busy: another program holds it" % path
    if err == errno.EISDIR:
        return "%s is a directory, not a serial port" % path
    return "cannot open %s: %s" % (path, getattr(e, "strerror", None) or text)


def open_serial(path: str, baudrate: int = 115200) -> Any:
    """The port as a pyserial object, opened exclusively; PortError says why not."""
    import serial  # pyserial
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        raise PortError(describe(path, e)) from None
    if stat.S_ISDIR(mode):
        raise PortError(describe(path, OSError(errno.EISDIR, "is a directory")))
    if not stat.S_ISCHR(mode):
        raise PortError(describe(path, OSError(errno.ENOTTY, "not a character device")))
    try:
        # The baud rate means nothing to USB CDC or a pty; pyserial wants one anyway.
        return serial.Serial(path, baudrate=baudrate, timeout=0, write_timeout=2, exclusive=True)
    except (serial.SerialException, OSError, ValueError) as e:
        raise PortError(describe(path, e)) from None


def open_port(path: str, baudrate: int = 115200) -> Any:
    """What tools.link.Link talks through: the session that serves `path` if one runs,
    else the port itself, opened exclusively."""
    from tools import session
    client = session.connect(path)
    if client is not None:
        return client
    return open_serial(path, baudrate)
