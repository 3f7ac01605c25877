# `make mpy` and `make deploy` for real: tools/build_mpy compiles the device image with
# mpy-cross, tools/deploy copies it with the real mpremote to a MicroPython (unix port)
# REPL on a pseudo-terminal, as it would to a Pico's USB serial, and the copied .mpy files
# then import on MicroPython. The REPL runs in a scratch directory: there `:x` is ./x.
import os
import subprocess
import sys


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
FAKES = os.path.join(ROOT, "host_tests", "fakes")


def build(out):
    proc = subprocess.run([sys.executable, "-m", "tools.build_mpy", "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def tree(top):
    found = set()
    for d, _, files in os.walk(top):
        for f in files:
            found.add(os.path.relpath(os.path.join(d, f), top).replace(os.sep, "/"))
    return found


def test_build_lays_out_the_flash_image_and_prints_its_size(tmp_path):
    out = tmp_path / "image"
    report = build(out)
    files = tree(out)
    assert "main.py" in files
    for f in ("app.mpy", "pump/core.mpy", "boards/__init__.mpy", "boards/fsstorage.mpy",
              "boards/stdiolink.mpy", "boards/pico/__init__.mpy", "boards/pico/run.mpy",
              "boards/pico/stepdir.mpy", "boards/pico/config.mpy"):
        assert f in files, f
    assert not any(f.endswith(".py") for f in files - {"main.py"})
    assert not any(f.startswith("boards/sim") or f.startswith("tools") for f in files)
    total = sum(os.path.getsize(out / f) for f in files)
    assert "%d  bytes in %d files" % (total, len(files)) in report, report


def test_deploy_copies_the_image_with_mpremote_and_it_imports(tmp_path, repl):
    device, port = repl
    out = tmp_path / "image"
    build(out)
    (device / "app.py").write_text("raise ImportError('a stale app.py shadows app.mpy')\n")
    (device / "data").mkdir()
    (device / "data" / "state").write_bytes(b"pump state")
    proc = subprocess.run(
        [sys.executable, "-m", "tools.deploy", "--port", port, "--resume", "--no-reset",
         "--no-build", "--build-dir", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert tree(device) == tree(out) | {"data/state"}
    assert (device / "data" / "state").read_bytes() == b"pump state"
    for f in tree(out):
        assert (device / f).read_bytes() == (out / f).read_bytes(), f
    check = ("import sys\nsys.path.append(%r)\n"
             "import app, pump.core, boards.pico, boards.pico.run, boards.pico.stepdir\n"
             "print('imported', app.__file__, boards.pico.stepdir.__file__, boards.pico.Board.name)\n"
             % FAKES)
    proc = subprocess.run([os.path.join(BIN, "mpremote"), "connect", port, "resume", "exec", check],
                          capture_output=True, text=True, timeout=60)
    assert "imported app.mpy boards/pico/stepdir.mpy pico" in proc.stdout, proc.stdout + proc.stderr
