# Puts the firmware and the boards on the path exactly as they sit on the Pico's flash.
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for path in (os.path.join(ROOT, "firmware"), ROOT):
    if path not in sys.path:
        sys.path.insert(0, path)
sys.path.insert(0, os.path.join(ROOT, "host_tests", "portable"))

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

FAKES = os.path.join(ROOT, "host_tests", "fakes")

# Runs only on the MicroPython unix port (it measures micropython.mem_total()); the
# bridge in test_micropython_port.py runs it there.
collect_ignore = [os.path.join("portable", "test_mp_alloc.py")]


def pytest_collect_file(file_path, parent):
    # The Pico board's tests import boards.pico, which needs `machine` and `rp2`: fakes
    # (host_tests/fakes). CPython has neither module, so appending the folder when such a
    # test file is collected shadows nothing; it stays on the path for the session.
    if file_path.name.startswith("test_pico") and FAKES not in sys.path:
        sys.path.append(FAKES)


@pytest.fixture(autouse=True)
def _portable_tests_in_a_scratch_dir(request, monkeypatch):
    # Portable tests make their flash folders in the current directory (as under
    # mp_runner.py, which starts in a temporary one); under pytest that is tmp_path too.
    if os.path.dirname(str(request.fspath)).endswith(os.path.join("host_tests", "portable")):
        monkeypatch.chdir(request.getfixturevalue("tmp_path"))


# A failing property prints its example and the blob that replays it.
settings.register_profile("default", deadline=None, print_blob=True)
settings.load_profile("default")


@pytest.fixture
def repl(tmp_path):
    # The MicroPython unix port's REPL on the master side of a pty, standing for a Pico
    # in service mode: mpremote opens the slave like a port. Yields (the device's
    # filesystem directory, the port's path).
    import subprocess
    import time
    import tty
    device = tmp_path / "device"
    device.mkdir()
    master, slave = os.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), "micropython")], stdin=master,
                            stdout=master, stderr=subprocess.DEVNULL, cwd=device, close_fds=True)
    os.close(master)
    time.sleep(0.2)  # the banner; mpremote resyncs anyway
    try:
        yield device, os.ttyname(slave)
    finally:
        proc.kill()
        proc.wait(timeout=10)
        os.close(slave)
