# The real Pico board type-checks against the MicroPython rp2 stubs (mypy-pico.ini): a
# call, keyword or constant the Pico's `machine` / `rp2` lacks fails here, before a flash.
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIG = os.path.join(ROOT, "mypy-pico.ini")


def mypy(cache_dir, *files):
    if not os.path.exists(os.path.join(ROOT, ".stubs", "machine.pyi")):
        pytest.fail("the rp2 stubs are missing from .stubs; run `make test`")
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", CONFIG, "--cache-dir", str(cache_dir),
         "--no-error-summary" if files else "--show-error-codes", *files],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )


def test_pico_board_type_checks_against_the_rp2_stubs(tmp_path):
    proc = mypy(tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Success" in proc.stdout


def test_the_check_catches_a_call_the_pico_does_not_have(tmp_path):
    # The same configuration must reject a wrong use of the stubs (a checker that sees
    # only Any would pass anything).
    canary = tmp_path / "canary.py"
    canary.write_text("from machine import ADC, Pin\n"
                      "ADC(26).read_u16(1)\n"
                      "Pin(2, Pin.OUTPUT)\n")
    proc = mypy(tmp_path / "cache", str(canary))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert 'Too many arguments for "read_u16"' in proc.stdout, proc.stdout
    assert 'has no attribute "OUTPUT"' in proc.stdout, proc.stdout
