# pyflakes over everything we write: unused imports, undefined names, shadowed names.
# The Pico's PIO program is written in the rp2 assembler's DSL (`from rp2.asm_pio import *`
# inside the program), whose names pyflakes cannot see; those lines are the only ones let
# through, by message.
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DSL_FILE = os.path.join("boards", "pico", "stepdir.py")


def test_pyflakes_finds_nothing():
    proc = subprocess.run([sys.executable, "-m", "pyflakes", "firmware", "boards", "tools", "host_tests"],
                          cwd=ROOT, capture_output=True, text=True)
    problems = [line for line in proc.stdout.splitlines()
                if not (line.startswith(DSL_FILE) and ("import *" in line or "star imports" in line))]
    assert not problems, "\n".join(problems)
