# `make firmware` and `make node` on bad input say what to install or run, and use nothing
# half-built: each case runs the project's Makefile in a scratch directory (its build/ and
# node_modules/ are the scratch's), so the real build is never touched. And the image that
# `make test` built is up to date: a second run rebuilds nothing.
import hashlib
import os
import shutil
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAKEFILE = os.path.join(ROOT, "Makefile")


def scratch(tmp_path):
    # a project of one file: the manifest the firmware rule depends on
    shutil.copy(os.path.join(ROOT, "manifest.py"), tmp_path / "manifest.py")
    return tmp_path


def make(cwd, *args):
    proc = subprocess.run(["make", "-f", MAKEFILE, "-C", str(cwd), "--no-print-directory"] + list(args),
                          capture_output=True, text=True, timeout=120)
    return proc.returncode, proc.stdout + proc.stderr


def test_a_missing_vendor_tarball_names_the_folder_and_what_to_do(tmp_path):
    rc, out = make(scratch(tmp_path), "firmware", "VENDOR=%s" % (tmp_path / "nowhere"), "PYTHON=true")
    assert rc != 0
    assert "rp2-toolchain-src.tar.xz is missing" in out and "VENDOR" in out, out
    assert not (tmp_path / "build" / "src").exists()


def test_a_damaged_tarball_fails_its_checksum_and_nothing_is_extracted(tmp_path):
    vendor = tmp_path / "vendor"
    vendor.mkdir()
    (vendor / "rp2-toolchain-src.tar.xz").write_bytes(b"not the pinned sources")
    real = os.path.join(ROOT, "..", "shared", "vendor", "SHA256SUMS")
    if os.path.exists(real):
        shutil.copy(real, vendor / "SHA256SUMS")
    else:  # a vendor folder elsewhere: a SHA256SUMS naming another checksum does as well
        (vendor / "SHA256SUMS").write_text("%s  rp2-toolchain-src.tar.xz\n" % hashlib.sha256(b"x").hexdigest())
    rc, out = make(scratch(tmp_path), "firmware", "VENDOR=%s" % vendor, "PYTHON=true")
    assert rc != 0
    assert "does not match its checksum" in out and "nothing was extracted" in out, out
    assert not (tmp_path / "build" / "src").exists() and not (tmp_path / "build" / "src.tmp").exists()
    (vendor / "SHA256SUMS").unlink()
    rc, out = make(tmp_path, "firmware", "VENDOR=%s" % vendor, "PYTHON=true")
    assert rc != 0 and "SHA256SUMS is missing" in out, out


def test_a_missing_toolchain_names_the_packages_to_install(tmp_path):
    rc, out = make(tmp_path, "toolchain", "ARM_GCC=no-such-arm-gcc", "TOOLCHAIN_INSTALL=no")
    assert rc != 0
    assert "sudo apt-get install gcc-arm-none-eabi libnewlib-arm-none-eabi" in out, out


def test_no_node_says_what_to_install(tmp_path):
    for name in ("package.json", "package-lock.json"):
        shutil.copy(os.path.join(ROOT, name), tmp_path / name)
    rc, out = make(tmp_path, "node", "NODE=no-such-node")
    assert rc != 0
    assert "Node.js is missing" in out and "apt-get install nodejs npm" in out, out
    assert not (tmp_path / "node_modules").exists()


def test_the_firmware_make_test_built_is_up_to_date():
    # make -q: exit 0 when nothing would be rebuilt (an unchanged tree builds nothing)
    uf2 = os.path.join("build", "firmware", "RPI_PICO", "firmware.uf2")
    proc = subprocess.run(["make", "-q", uf2], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, "make would rebuild %s: run `make firmware` (make test does)" % uf2
