# The pinned third-party sources the firmware is built from (MicroPython, its pico-sdk and
# micropython-lib), kept outside the repository as one tarball with its checksum: by
# default ../shared/vendor beside the repository, or $PUMP_VENDOR (the Makefile's VENDOR).
# `make firmware` extracts the whole tarball into build/src; the host tools that only need
# a micropython-lib module (the unix-port images) take that one file from it.
import hashlib
import os
import tarfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARBALL = "rp2-toolchain-src.tar.xz"
EXTRACTED = os.path.join(ROOT, "build", "src")  # the Makefile's SRC
MPLIB = os.path.join(ROOT, "build", "mplib")  # single modules taken from the tarball
MPLIB_IN_TREE = "micropython/lib/micropython-lib/python-stdlib/%s/%s.py"


def vendor_dir():
    return os.environ.get("PUMP_VENDOR") or os.path.join(ROOT, "..", "shared", "vendor")


def tarball():
    # The tarball's path once its checksum matches SHA256SUMS; SystemExit says what is wrong.
    d = vendor_dir()
    path = os.path.join(d, TARBALL)
    sums = os.path.join(d, "SHA256SUMS")
    if not os.path.exists(path) or not os.path.exists(sums):
        raise SystemExit("%s or its SHA256SUMS is missing: the pinned MicroPython sources live in "
                         "the vendor folder (default ../shared/vendor, or set PUMP_VENDOR)" % path)
    want = None
    with open(sums) as f:
        for line in f:
            parts = line.split()
            if len(parts) == 2 and parts[1].lstrip("*") == TARBALL:
                want = parts[0]
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    if h.hexdigest() != want:
        raise SystemExit("%s does not match its checksum in SHA256SUMS (damaged or another "
                         "version): replace it with the pinned tarball" % path)
    return path


def mplib_source(name):
    # The source of micropython-lib's python-stdlib module `name` (e.g. "hmac"): from the
    # tree `make firmware` extracted, else taken alone from the tarball into build/mplib.
    member = MPLIB_IN_TREE % (name, name)
    in_tree = os.path.join(EXTRACTED, *member.split("/"))
    if os.path.exists(os.path.join(EXTRACTED, ".extracted")) and os.path.exists(in_tree):
        return in_tree
    target = os.path.join(MPLIB, name + ".py")
    if os.path.exists(target):
        return target
    os.makedirs(MPLIB, exist_ok=True)
    with tarfile.open(tarball()) as tar:
        data = tar.extractfile(member).read()
    tmp = "%s.%d.tmp" % (target, os.getpid())
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, target)
    return target


# micropython-lib modules the firmware requires (manifest.py's require() lines); the
# unix-port images carry the same ones
MPLIB_MODULES = ("hmac",)
