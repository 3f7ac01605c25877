# One seeded scenario on the MicroPython unix port and on CPython gives byte-identical
# link output, event log and stored state: the core is deterministic and neither
# runtime's quirks (dict order, float formatting, int size) leak into what it produces.
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(ROOT, "firmware", "main.py")
ARGS = ["--days", "15", "--seed", "7", "--program", "baclofen:2000:450", "--fill-ml", "20",
        "--status-ms", "3600000", "--flash", "flash"]


def _run(cmd, cwd, env):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    assert proc.returncode == 0, proc.stderr.decode()
    files = {}
    for name in sorted(os.listdir(os.path.join(cwd, "flash"))):
        with open(os.path.join(cwd, "flash", name), "rb") as f:
            files[name] = f.read()
    return proc.stdout, files


def test_same_seed_same_bytes_on_both_runtimes(tmp_path):
    # MicroPython runs the image as a Pico holds it (.mpy); CPython the sources
    from tools import build_mpy
    image = build_mpy.build_sim(str(tmp_path / "image"))
    bin_dir = os.path.dirname(sys.executable)
    mp_dir = tmp_path / "micropython"
    cp_dir = tmp_path / "cpython"
    mp_dir.mkdir()
    cp_dir.mkdir()
    env = dict(os.environ)
    env["MICROPYPATH"] = ".frozen:%s" % image
    # (the simulated Pico's own heap: the whole simulated board runs beside the firmware)
    from tools.simpico import HEAP
    mp_out, mp_files = _run([os.path.join(bin_dir, "micropython"), "-X", "heapsize=" + HEAP,
                             os.path.join(image, "main.py")] + ARGS, mp_dir, env)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "firmware"), ROOT])
    cp_out, cp_files = _run([sys.executable, MAIN] + ARGS, cp_dir, env)
    assert mp_out.count(b'"t":"status"') >= 15 * 24
    assert sorted(mp_files) == [".sim-physics", "log", "state"]
    assert mp_out == cp_out
    assert mp_files == cp_files
