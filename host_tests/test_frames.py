# The functions on the per-stroke path fit a MicroPython frame on the C stack.
#
# MicroPython allocates a call's frame on the heap when its state (locals plus value
# stack, N_STATE words) is more than 11 words, or when it has an exception handler
# (VM_MAX_STATE_ON_STACK in py/objfun.c). On the pump's loop that would be an
# allocation, and GC work, on every stroke. The unix port's verbose compiler prints each
# function's N_STATE and N_EXC_STACK, so this reads the exact figures from MicroPython
# itself. host_tests/portable/test_mp_alloc.py measures the whole loop as well.
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAX_STATE_WORDS = 11

# the functions a stroke passes through, per file (shell, core, both boards)
HOT = {
    "firmware/app.py": ["step", "_carry_out", "_turn", "_release_motor", "_sample"],
    "firmware/pump/engine.py": ["tick", "_due", "_run_basal", "_command", "_within_24h", "_commit", "_ring_push",
                                "rotor", "_confirm_basal", "_confirmed", "_plan", "_confirm_check_at", "_sooner",
                                "_advance", "take_strokes", "_persist", "pressure"],
    "firmware/pump/detect.py": ["sample", "_noisy", "_occlusion"],
    "firmware/pump/strokes.py": ["due", "_schedule"],
    "firmware/pump/limits.py": ["advance", "_rotate", "add_pg"],
    "firmware/pump/reservoir.py": ["confirm"],
    "boards/pico/__init__.py": ["wait"],
    "boards/pico/stepdir.py": ["step", "busy", "enable", "_pump"],
    "boards/pico/uln2003.py": ["step", "busy", "enable"],
    "boards/pico/rotor.py": ["take"],
    "boards/pico/watchdog.py": ["feed"],
    "boards/pico/annunciator.py": ["tick"],
    "boards/stdiolink.py": ["read"],  # write runs per frame sent, and frames allocate anyway
    "boards/sim/__init__.py": ["wait", "ticks_ms"],
    "boards/sim/head.py": ["step", "busy", "take", "advance", "_stroke", "_plan", "enable", "_impaired_stroke"],
    # the line and the sensors: a push per stroke, a pressure reading per stroke
    "boards/sim/fluid.py": ["push", "keep_q30", "stored_at", "read_raw", "ideal_raw", "_catch_up", "_raw_q16",
                            "ubar", "slow_ubar", "_faulty", "_noise_below"],
    "boards/sim/battery.py": ["read_mv", "true_mv"],
}

_COMPILE = "import sys\ncompile(open(sys.argv[1]).read(), sys.argv[1], 'exec')\n"


def frames(path, tmp_path):
    # {function name: (N_STATE, N_EXC_STACK)} for every code block in the file
    script = tmp_path / "compile_only.py"
    script.write_text(_COMPILE)
    exe = os.path.join(os.path.dirname(sys.executable), "micropython")
    proc = subprocess.run([exe, "-v", "-v", str(script), os.path.join(ROOT, path)],
                          capture_output=True, text=True, timeout=60)
    out = {}
    name = None
    for line in proc.stdout.splitlines():
        m = re.match(r"File .*, code block '([^']+)'", line)
        if m:
            name = m.group(1)
            continue
        m = re.match(r"\(N_STATE (\d+)\)", line)
        if m and name:
            state = int(m.group(1))
            continue
        m = re.match(r"\(N_EXC_STACK (\d+)\)", line)
        if m and name:
            # several methods may share a name across classes: keep the largest
            prev = out.get(name, (0, 0))
            out[name] = (max(prev[0], state), max(prev[1], int(m.group(1))))
            name = None
    return out


@pytest.mark.parametrize("path", sorted(HOT))
def test_stroke_path_functions_fit_on_the_c_stack(path, tmp_path):
    found = frames(path, tmp_path)
    assert found, "the compiler printed no frames for %s" % path
    too_big = []
    for fn in HOT[path]:
        assert fn in found, "%s has no function %s (update HOT)" % (path, fn)
        state, exc = found[fn]
        if state > MAX_STATE_WORDS or exc:
            too_big.append("%s: N_STATE %d, N_EXC_STACK %d" % (fn, state, exc))
    assert not too_big, "%s: frames that MicroPython puts on the heap: %s" % (path, "; ".join(too_big))


def test_the_reader_sees_a_big_frame(tmp_path):
    # the parsing itself can fail: a function with twelve locals is seen as too big
    src = tmp_path / "big.py"
    src.write_text("def big(a, b):\n    c = a; d = c; e = d; f = e; g = f; h = g; i = h; j = i; k = j; l = k\n"
                   "    return l\n")
    found = frames(str(src), tmp_path)
    assert found["big"][0] > MAX_STATE_WORDS
