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


def frames_of_bounded_run(sim, timeout_s=30):
    # Launches a SimPico that ends by itself (days=N) with a Link attached first, so every
    # frame arrives, reads as a client does while the firmware runs (the pty buffers
    # only so much) and after it exits until the port is quiet. Returns (frames, link);
    # the caller closes the link.
    from tools.link import Link
    sim.open()
    link = Link(sim.port)
    try:
        sim.launch()
        frames = []
        deadline = time.monotonic() + timeout_s
        while not (sim.poll() is not None and sim.wait_drained(0)):
            assert time.monotonic() < deadline, "the bounded run did not end"
            frames += link.receive(0.2)
        while True:
            got = link.receive(0.3)
            if not got:
                break
            frames += got
        assert sim.wait(5) == 0, sim.last_words()
    except BaseException:
        link.close()
        raise
    return frames, link
