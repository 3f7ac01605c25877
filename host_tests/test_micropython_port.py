# Every portable test module, run again on the MicroPython unix port under the heap limit
# a Pico leaves free (and stricter: pointers are 8 bytes here, 4 on the RP2040).
import glob
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
HEAP = "192k"
MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(HERE, "portable", "test_*.py")))


def micropython():
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    if not os.path.exists(exe):
        pytest.fail("micropython is not installed in this venv; run `make test`")
    return exe


@pytest.mark.parametrize("module", MODULES)
def test_portable_module_on_micropython(module, tmp_path):
    proc = subprocess.run(
        [micropython(), "-X", "heapsize=" + HEAP, os.path.join(HERE, "mp_runner.py"), module],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert " passed, 0 failed" in report, report
