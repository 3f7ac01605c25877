# Helpers for the tests that start real processes (the simulated Pico, the console).
import os
import time

import pytest


def firmware_processes(marker):
    # Live (not zombie) processes whose command line contains `marker`, by /proc.
    found = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % name, "rb") as f:
                cmdline = f.read()
            with open("/proc/%s/stat" % name) as f:
                state = f.read().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and b"main.py" in cmdline and state != "Z":
            found.append(int(name))
    return found


def wait_until(condition, timeout_s, what):
    # Polls condition() until it returns something true, and returns that.
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail("timed out after %.0f s waiting until %s" % (timeout_s, what))
        time.sleep(0.05)
