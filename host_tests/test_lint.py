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


# A tick can be any integer, 0 included (signed tick 0 comes round every 12.4 days), so a
# time that may be absent is None, tested with `is None`, never 0 tested for truth. The
# names of the core's times end in _at, _until or _by.
TICK_NAME = r"self\.\w+(?:_at|_until|_by)\b"


def test_no_tick_in_the_core_is_tested_for_truth_or_set_to_zero():
    import re
    truthy = re.compile(r"\b(?:if|elif|and|or|not|while)\s+(?:not\s+)?" + TICK_NAME + r"(?!\s*(?:is|==|!=|\[|\.|\())")
    zeroed = re.compile(TICK_NAME + r"\s*=\s*0\b")
    found = []
    core = os.path.join(ROOT, "firmware", "pump")
    for name in sorted(os.listdir(core)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(core, name)) as f:
            for n, line in enumerate(f, 1):
                code = line.split("#", 1)[0]
                if truthy.search(code) or zeroed.search(code):
                    found.append("firmware/pump/%s:%d: %s" % (name, n, line.strip()))
    assert not found, "\n".join(found)
