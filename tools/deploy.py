# `make deploy ARGS="--port /dev/ttyACM0"`: build the device image (tools/build_mpy) and
# copy it to a Pico with mpremote, in one mpremote session.
#
# The pump's main.py turns Ctrl-C off, so mpremote cannot stop a running pump: boot the
# Pico with the service pin held (docs/pico.md) and it waits in the REPL. The copy
# creates the folders, deletes any .py a new .mpy replaces (MicroPython imports X.py
# before X.mpy, so a stale source would win) and never touches the pump's data folder.
# Then it resets the Pico so main.py starts, unless --no-reset. No micropython-lib
# package is needed, so there is no `mpremote mip install` step.
#
# --resume skips mpremote's soft reset on connect: needed for the MicroPython unix port's
# REPL on a pseudo-terminal (its soft reset ends the process), as the deploy test does.
import argparse
import os
import sys

from tools import build_mpy


def _walk(build_dir):
    # device paths of the image, files only, sorted
    found = []
    for top, dirs, files in os.walk(build_dir):
        dirs.sort()
        for name in sorted(files):
            rel = os.path.relpath(os.path.join(top, name), build_dir)
            found.append(rel.replace(os.sep, "/"))
    return found


def _prepare_script(files):
    # Runs on the device before the copy: folders, and no stale .py beside a new .mpy.
    dirs = sorted({f.rsplit("/", 1)[0] for f in files if "/" in f}, key=lambda d: d.count("/"))
    stale = [f[:-4] + ".py" for f in files if f.endswith(".mpy")]
    return ("import os\n"
            "for d in %r:\n"
            "    try:\n        os.mkdir(d)\n    except OSError:\n        pass\n"
            "for f in %r:\n"
            "    try:\n        os.remove(f)\n    except OSError:\n        pass\n") % (dirs, stale)


def command(build_dir, port=None, resume=False, reset=True, mpremote=None):
    # The mpremote argument list that deploys build_dir.
    exe = mpremote or os.path.join(os.path.dirname(sys.executable), "mpremote")
    files = _walk(build_dir)
    if not files:
        raise SystemExit("nothing to deploy in " + build_dir)
    args = [exe, "connect", port or "auto"]
    if resume:
        args.append("resume")
    args += ["exec", _prepare_script(files)]
    by_dir = {}
    for f in files:
        d = f.rsplit("/", 1)[0] if "/" in f else ""
        by_dir.setdefault(d, []).append(f)
    for d in sorted(by_dir):
        srcs = [os.path.join(build_dir, *f.split("/")) for f in by_dir[d]]
        # relative device paths: the Pico's REPL starts in "/", a unix-port REPL in its cwd
        args += ["+", "fs", "cp"] + srcs + [":" + (d or ".") + "/"]
    if reset:
        args += ["+", "reset"]
    return args


def main(argv=None):
    ap = argparse.ArgumentParser(description="Copy the firmware image to a Pico.")
    ap.add_argument("--port", default=None, help="serial device (default: the first mpremote finds)")
    ap.add_argument("--build-dir", default=build_mpy.DEFAULT_OUT)
    ap.add_argument("--no-build", action="store_true", help="deploy build-dir as it is")
    ap.add_argument("--resume", action="store_true", help="no soft reset on connect (unix-port REPL)")
    ap.add_argument("--no-reset", action="store_true", help="leave the board in the REPL afterwards")
    ap.add_argument("--mpremote", default=None, help="mpremote executable (default: the venv's)")
    opts = ap.parse_args(argv)
    if not opts.no_build:
        image = build_mpy.build(opts.build_dir)
        print("built %d bytes in %d files" % (sum(s for _, s in image), len(image)))
    args = command(opts.build_dir, opts.port, opts.resume, not opts.no_reset, opts.mpremote)
    import subprocess
    proc = subprocess.run(args)
    if proc.returncode:
        raise SystemExit("mpremote failed (%d). Was the Pico booted with the service pin held?"
                         % proc.returncode)
    return 0


if __name__ == "__main__":
    main()
