"""The emulated Pico's host side: the real firmware image on an emulated RP2040 (emu/), its
USB serial on a pty, its flash a file kept between runs.

    python -m tools.emupico [--flash FILE] [--service] [--speed X]   # `make emu`

prints the serial port's path (/dev/pts/N) on its first line and runs until Ctrl-C. The
console, mpremote and `make deploy` talk to that port as to a Pico's /dev/ttyACM0. From
Python:

    with EmuPico(flash="pico.flash") as pico:
        pico.control("status")            # the harness: head, pins, flash, cycles
        link = Link(pico.port)

The emulator (Node, rp2040js) is emu/pico.mjs; its process gets the pty as stdin/stdout
and a control socket in a scratch directory. The pty relay is the simulated Pico's
(tools/ptyrelay.py), for the same reasons (clients come and go, the chip never blocks).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import tty
import weakref
from typing import Any

from tools.ptyrelay import Relay, RelayStats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS = os.path.join(ROOT, "emu", "pico.mjs")
DEFAULT_UF2 = os.path.join(ROOT, "build", "firmware", "RPI_PICO", "firmware.uf2")
NODE_MODULES = os.path.join(ROOT, "node_modules", "rp2040js")
NODE_MAJOR_MIN = 18  # rp2040js 1.4.1's engines field
STOP_GRACE_S = 2.0
READY_TIMEOUT_S = 20.0
# The longest wait for a command's answer: one that writes the pump's state costs the
# emulated chip tens of millions of cycles, seconds of wall time on a busy host.
EMU_COMMAND_S = 60.0
KEYS_PATH = "/data/keys"  # boards/pico/config.py STORAGE_DIR + the keys file

_live: "weakref.WeakSet[EmuPico]" = weakref.WeakSet()


class EmuError(Exception):
    pass


def find_node() -> str:
    node = shutil.which("node")
    if node is None:
        raise EmuError("node is not installed: the emulated Pico runs on Node.js %d or newer "
                       "(Debian: apt-get install nodejs npm), then `make emu`" % NODE_MAJOR_MIN)
    out = subprocess.run([node, "--version"], capture_output=True, text=True).stdout.strip()
    try:
        major = int(out.lstrip("v").split(".")[0])
    except ValueError:
        major = 0
    if major < NODE_MAJOR_MIN:
        raise EmuError("node %s is too old: the emulated Pico needs Node.js %d or newer" % (out, NODE_MAJOR_MIN))
    return node


def check_ready(uf2: str) -> None:
    # What the emulated Pico needs, each with what to run when it is missing.
    if not os.path.isdir(NODE_MODULES):
        raise EmuError("the emulator's packages are missing (node_modules/): run `make emu` or `npm ci`")
    if not os.path.exists(uf2):
        raise EmuError("%s is missing: build the firmware with `make firmware`" % uf2)


class Repl:
    """MicroPython's raw REPL on a serial port (a Pico in service mode): code in, output out."""

    def __init__(self, port: str, timeout_s: float = 20.0) -> None:
        self.fd = os.open(port, os.O_RDWR | os.O_NOCTTY)
        self.timeout_s = timeout_s
        self.buf = b""

    def _read_until(self, marker: bytes, timeout_s: float) -> bytes:
        import select
        deadline = time.monotonic() + timeout_s
        while marker not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise EmuError("the REPL did not answer (waited %.0f s for %r; got %r)"
                               % (timeout_s, marker, self.buf[-200:]))
            r, _, _ = select.select([self.fd], [], [], min(left, 0.2))
            if r:
                try:
                    self.buf += os.read(self.fd, 4096)
                except OSError:
                    pass
        i = self.buf.index(marker) + len(marker)
        got, self.buf = self.buf[:i], self.buf[i:]
        return got

    def enter(self) -> None:
        # Ctrl-C twice (a running program stops; nothing happens at a prompt), then Ctrl-A
        deadline = time.monotonic() + self.timeout_s
        while True:
            self.buf = b""
            os.write(self.fd, b"\r\x03\x03\x01")
            try:
                self._read_until(b"raw REPL; CTRL-B to exit\r\n>", 2.0)
                return
            except EmuError:
                if time.monotonic() > deadline:
                    raise

    def exec(self, code: str, timeout_s: float | None = None) -> str:
        # Runs code; returns what it printed. EmuError with the traceback if it raised.
        self.buf = b""
        os.write(self.fd, code.encode() + b"\x04")
        self._read_until(b"OK", 5.0)
        out = self._read_until(b"\x04", timeout_s or self.timeout_s)[:-1]
        err = self._read_until(b"\x04", 5.0)[:-1]
        self._read_until(b">", 5.0)
        if err:
            raise EmuError("the Pico raised: %s" % err.decode("utf-8", "replace").strip())
        return out.decode("utf-8", "replace")

    def send(self, code: str) -> None:
        # Runs code without waiting for an answer (a reset never answers).
        os.write(self.fd, code.encode() + b"\x04")

    def close(self) -> None:
        os.close(self.fd)


class EmuPico:
    """The emulated Pico as a host process with a serial port path and a control socket.

    start() = open() (ptys and relay: `port` exists, nothing runs yet) + launch().
    """

    def __init__(self, flash: str | None = None, uf2: str = DEFAULT_UF2, speed: float = 0,
                 service: bool = False, seed: int = 1, uid: str | None = None,
                 driver: str = "stepdir", until_ms: int = 0, cut_at_cycle: int = -1,
                 keys: dict[str, bytes] | None = None, stats: bool = False,
                 usb_stock: bool = False) -> None:
        # flash: the flash image file (kept; default a scratch file removed at stop).
        # keys ({role: 32 bytes}): written to the Pico's /data/keys through its REPL in
        # service mode before the pump starts, as provisioning does on a real Pico.
        self.uf2 = uf2
        self.speed = speed
        self.service = service
        self.seed = seed
        self.uid = uid
        self.driver = driver
        self.until_ms = until_ms
        self.cut_at_cycle = cut_at_cycle
        self.keys = dict(keys) if keys else None
        self.show_stats = stats
        self.usb_stock = usb_stock  # rp2040js's own USB host: the benchmark's "before"
        self.days = until_ms // 86400000
        self._flash_arg = flash
        self.flash = ""
        self.port = ""
        self.control_path = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self._scratch: str | None = None
        self._fw_master: int | None = None
        self._fw_slave: int | None = None
        self._client_master: int | None = None
        self._relay: Relay | None = None
        self._sock: socket.socket | None = None
        self._sock_buf = b""
        self._output_mark = 0
        self._closed = False

    # -- lifecycle
    def open(self) -> "EmuPico":
        if self._relay is not None:
            return self
        check_ready(self.uf2)
        self.node = find_node()
        self._scratch = tempfile.mkdtemp(prefix="emupico-%d-" % os.getpid())
        self.flash = os.path.abspath(self._flash_arg) if self._flash_arg else \
            os.path.join(self._scratch, "flash.bin")
        self.control_path = os.path.join(self._scratch, "control")
        os.makedirs(os.path.dirname(self.flash), exist_ok=True)
        self.uid = self.uid or _flash_uid(self.flash)
        _live.add(self)
        self._fw_master, self._fw_slave = os.openpty()
        self._client_master, client_slave = os.openpty()
        tty.setraw(self._fw_slave)
        tty.setraw(client_slave)
        self.port = os.ttyname(client_slave)
        os.close(client_slave)
        self._relay = Relay(self._fw_master, self._client_master)
        self._relay.start()
        return self

    def argv(self) -> list[str]:
        args = [self.node, HARNESS, "--flash", self.flash, "--uf2", self.uf2,
                "--control", self.control_path, "--speed", str(self.speed),
                "--seed", str(self.seed), "--driver", self.driver]
        args += ["--uid", self.uid or _flash_uid(self.flash)]
        if self.until_ms:
            args += ["--until-ms", str(self.until_ms)]
        if self.cut_at_cycle >= 0:
            args += ["--cut-at-cycle", str(self.cut_at_cycle)]
        if self.service or self.keys:
            args.append("--service")
        if self.show_stats:
            args.append("--stats")
        if self.usb_stock:
            args.append("--usb-stock")
        return args

    def launch(self) -> "EmuPico":
        self.open()
        if self.proc is not None:
            return self
        self.returncode = None
        assert self._relay is not None
        self._output_mark = self._relay.stats.from_firmware_bytes  # wait_output looks past it
        self.proc = subprocess.Popen(self.argv(), stdin=self._fw_slave, stdout=self._fw_slave,
                                     stderr=subprocess.PIPE, cwd=ROOT, start_new_session=True)
        assert self._relay is not None and self.proc.stderr is not None
        self._relay.watch_stderr(self.proc.stderr.fileno())
        self._connect()
        if self.keys:
            self._provision(self.keys)
        return self

    def start(self) -> "EmuPico":
        return self.launch()

    def relaunch(self, **changes: Any) -> "EmuPico":
        # The next power-up as a new process (after a power cut or a stop): the same
        # flash file and port, options changed as given (e.g. cut_at_cycle=-1).
        if self.proc is not None:
            self._end_process()
        for name, value in changes.items():
            setattr(self, name, value)
        self.keys = changes.get("keys")
        self.proc = None
        return self.launch()

    def _connect(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            if self.poll() is not None:
                raise EmuError("the emulator exited (%s): %s" % (self.returncode, self.stderr.strip()[-2000:]))
            try:
                s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                s.connect(self.control_path)
                self._sock = s
                self._sock_buf = b""
                return
            except OSError:
                s.close()
                if time.monotonic() > deadline:
                    raise EmuError("the emulator did not start: %s" % self.stderr.strip()[-2000:])
                time.sleep(0.02)

    def control(self, op: str, **args: Any) -> dict[str, Any]:
        # One request to the harness (emu/pico.mjs, EmulatedPico.op); its answer.
        if self._sock is None:
            raise EmuError("the emulator is not running")
        self._sock.sendall(json.dumps(dict(args, op=op)).encode() + b"\n")
        while b"\n" not in self._sock_buf:
            chunk = self._sock.recv(65536)
            if not chunk:
                raise EmuError("the emulator went away: %s" % self.stderr.strip()[-2000:])
            self._sock_buf += chunk
        line, self._sock_buf = self._sock_buf.split(b"\n", 1)
        answer: dict[str, Any] = json.loads(line)
        if not answer.get("ok"):
            raise EmuError("emulator: %s" % answer.get("error"))
        return answer

    def status(self) -> dict[str, Any]:
        return self.control("status")

    def run_until(self, emulated_s: float, timeout_s: float = 120.0) -> dict[str, Any]:
        # Wall-clock wait until the chip's clock reaches emulated_s seconds.
        deadline = time.monotonic() + timeout_s
        while True:
            st = self.status()
            if st["emulated_s"] >= emulated_s:
                return st
            if time.monotonic() > deadline:
                raise EmuError("the emulated clock reached only %.1f s of %.1f s in %.0f s"
                               % (st["emulated_s"], emulated_s, timeout_s))
            time.sleep(0.05)

    def wait_output(self, text: str, timeout_s: float = READY_TIMEOUT_S) -> None:
        # Until the firmware has printed `text` on its serial (e.g. the service-mode notice,
        # after which the REPL is free and the service pin is no longer read)
        deadline = time.monotonic() + timeout_s
        want = text.encode()

        def since_launch() -> bytes:
            if self._relay is None:
                return b""
            new = self._relay.stats.from_firmware_bytes - self._output_mark
            tail = self._relay.output_tail()
            return tail[-new:] if 0 < new < len(tail) else (tail if new > 0 else b"")
        while want not in since_launch():
            if self.poll() is not None or time.monotonic() > deadline:
                raise EmuError("the Pico did not print %r: %s" % (text, self.last_words()[-1000:]))
            time.sleep(0.02)

    def repl(self) -> Repl:
        # The raw REPL (the pump must be in service mode, or stopped)
        r = Repl(self.port)
        try:
            r.enter()
        except BaseException:
            r.close()
            raise
        return r

    def _provision(self, keys: dict[str, bytes]) -> None:
        # As `console provision` does on a Pico: in service mode, the keys file onto its
        # LittleFS; then the service pin released and a reset, so the pump starts with them.
        from tools.keystore import keys_file
        data = keys_file(self.dev, keys)
        r = self.repl()
        try:
            r.exec("import os\ntry:\n    os.mkdir('/data')\nexcept OSError:\n    pass\n"
                   "f = open(%r, 'wb')\nf.write(bytes.fromhex(%r))\nf.close()\n"
                   % (KEYS_PATH, data.hex()))
            self.control("service", held=self.service)
            boots = len(self.status()["boots"])
            r.send("import machine\nmachine.reset()\n")
        finally:
            r.close()
        # host bytes sent before the reset would be lost with the old USB connection
        deadline = time.monotonic() + READY_TIMEOUT_S
        while len(self.status()["boots"]) == boots:
            if time.monotonic() > deadline:
                raise EmuError("the Pico did not restart after provisioning")
            time.sleep(0.02)

    @property
    def dev(self) -> str:
        # the device id the firmware computes: machine.unique_id() in hex (the flash's id)
        return (self.uid or _flash_uid(self.flash)).lower()

    def poll(self) -> int | None:
        if self.proc is not None and self.returncode is None:
            self.returncode = self.proc.poll()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        assert self.proc is not None, "launch() first"
        self.returncode = self.proc.wait(timeout)
        return self.returncode

    def wait_drained(self, timeout: float | None = None) -> bool:
        return self._relay is not None and self._relay.drained.wait(timeout)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def attached(self) -> bool:
        return bool(self._relay and self._relay.attached)

    @property
    def stats(self) -> RelayStats:
        return self._relay.stats if self._relay else RelayStats()

    @property
    def stderr(self) -> str:
        return self._relay.stderr_text() if self._relay else ""

    def last_words(self) -> str:
        tail = self._relay.output_tail() if self._relay else b""
        lines = [line for line in tail.decode("utf-8", "replace").split("\n")
                 if line.strip() and not line.startswith("~")]
        text = "\n".join(lines[-20:])
        err = self.stderr.strip()
        return (text + "\n" + err if text and err else text or err).rstrip()

    def _end_process(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            _kill_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(STOP_GRACE_S)
            except subprocess.TimeoutExpired:
                _kill_group(proc.pid, signal.SIGKILL)
                proc.wait()
        self.returncode = proc.returncode
        # the relay keeps watching the old stderr pipe until the next launch replaces it

    def stop(self) -> int | None:
        if self._closed:
            return self.returncode
        self._end_process()
        if self._relay is not None:
            self._relay.stop()
            self._relay.join(5)
            self._relay.close()
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        for name in ("_fw_master", "_fw_slave", "_client_master"):
            fd = getattr(self, name)
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
                setattr(self, name, None)
        if self._scratch:
            shutil.rmtree(self._scratch, ignore_errors=True)
        self._closed = True
        _live.discard(self)
        return self.returncode

    def __enter__(self) -> "EmuPico":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


def emu_from_options(opts: argparse.Namespace, keys: dict[str, bytes] | None = None) -> EmuPico:
    # The console's --emu: the simulated Pico's options where they mean the same here
    # (--speed caps the emulated time per wall second, --days ends the run, --seed, --flash
    # names the flash image file), a fresh pump set up over the link (setup_therapy).
    return EmuPico(flash=opts.flash, speed=opts.speed, seed=opts.seed,
                   until_ms=opts.days * 86400000, keys=keys)


def check_emu_options(opts: argparse.Namespace) -> str | None:
    # What --emu cannot do (the emulated Pico's faults are set on its control socket, at
    # run time), or None
    for name, flag in (("fault", "--fault"), ("random_faults", "--random-faults"),
                       ("program_file", "--program-file"), ("status_ms", "--status-ms")):
        if getattr(opts, name, None):
            return ("%s is for --sim; on --emu the pump's own settings apply (a program file: "
                    "`console program FILE --port PORT`)" % flag)
    return None


def setup_therapy(link: Any, program: str, fill_ml: object, clock: str) -> bool:
    # A fresh pump set up as a clinician would, with signed commands over the link: the
    # wall clock, the first fill, the program. Nothing when it already has a program (a
    # kept flash). Returns whether it set one up. fill_ml: --fill-ml as given (text).
    from tools.simpico import parse_clock, parse_fill_ml, parse_program
    status = link.status(EMU_COMMAND_S)
    if status.get("drug"):
        return False
    drug, conc, dose = parse_program(program)
    day, ms = parse_clock(clock)
    link.command("clock", {"day": day, "ms": ms}, timeout_s=EMU_COMMAND_S)
    fill_nl = parse_fill_ml(fill_ml)
    if fill_nl:
        link.command("fill", {"volume_nl": fill_nl, "conc_ug_per_ml": conc}, timeout_s=EMU_COMMAND_S)
    link.command("program", {"drug": drug, "conc_ug_per_ml": conc, "dose_ug_per_day": dose}, timeout_s=EMU_COMMAND_S)
    return True


def _flash_uid(flash: str) -> str:
    # The unique id of the flash chip an image file stands for, kept beside it (FILE.uid):
    # one emulated Pico keeps its id, and so its keys, across runs. A new image gets a
    # random one, as every Pico's flash has its own.
    path = flash + ".uid"
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        uid = os.urandom(8).hex()
        with open(path, "w") as f:
            f.write(uid + "\n")
        return uid


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


def _stop_all() -> None:
    for pico in list(_live):
        pico.stop()


import atexit  # noqa: E402
atexit.register(_stop_all)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.emupico",
        description="Run the firmware image on an emulated Pico; its USB serial is the pty path printed first.")
    ap.add_argument("--flash", default=os.path.join(ROOT, "build", "emu", "flash.bin"),
                    help="the flash image file, kept between runs (default %(default)s; created blank)")
    ap.add_argument("--uf2", default=DEFAULT_UF2, help="firmware image written into the flash first")
    ap.add_argument("--speed", type=float, default=1.0,
                    help="at most this many emulated seconds per wall second (default 1: real time; "
                         "0: as fast as it goes)")
    ap.add_argument("--service", action="store_true",
                    help="hold the service pin (GP22) at boot: the pump does not start, the REPL is free")
    ap.add_argument("--driver", choices=("stepdir", "uln2003"), default="stepdir",
                    help="the motor driver wired to the pins (the firmware's config.DRIVER)")
    ap.add_argument("--seed", type=int, default=1, help="seed of the head's faults and sensor noise")
    opts = ap.parse_args(argv)
    os.makedirs(os.path.dirname(os.path.abspath(opts.flash)), exist_ok=True)
    pico = EmuPico(flash=opts.flash, uf2=opts.uf2, speed=opts.speed, service=opts.service,
                   driver=opts.driver, seed=opts.seed, stats=True)
    try:
        pico.open()
        print(pico.port, flush=True)
        pico.launch()
        print("emupico: emulated Pico %s (pid %s) on %s, flash %s; Ctrl-C stops it"
              % (pico.dev, pico.pid, pico.port, os.path.relpath(pico.flash)), file=sys.stderr, flush=True)
        while pico.poll() is None:
            try:
                pico.wait(0.5)
            except subprocess.TimeoutExpired:
                pass
        print(pico.last_words(), file=sys.stderr)
        return pico.returncode or 0
    except EmuError as e:
        print("emupico: %s" % e, file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        pico.stop()


if __name__ == "__main__":
    sys.exit(main())
