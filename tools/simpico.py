"""The simulated Pico's host side: firmware on the MicroPython unix port, its USB serial on a pty.

    python -m tools.simpico [--speed 3600] [--days N] [--program DRUG:CONC:DOSE] ...
    python -m tools.simpico --program-file programs/flex-day-night-2000.toml [--clock 2024-01-01T07:30]

prints the serial port's path (/dev/pts/N) on its first line and runs until Ctrl-C or
until the firmware exits. From Python:

    with SimPico(speed=3600, program="baclofen:500:200") as sim:
        link = Link(sim.port)

Why two pseudo-terminals and a relay rather than one pty: a Pico keeps pumping whether or
not a host reads its USB serial, and clients (the console, pyserial, screen, mpremote)
come and go. With one pty the firmware's writes would block once the kernel buffer
filled with nobody reading, and a late client would first read stale output
(tools/ptyrelay.py).

Why the firmware gets its pty as controlling terminal, in a session of its own: Ctrl-C
at the user's terminal must not reach it (the host decides when it stops), and if this
process dies without cleaning up, even by SIGKILL, the kernel closes the relay's master,
which hangs up the firmware's terminal and SIGHUPs the whole session. No orphan survives.
"""
from __future__ import annotations

import argparse
import atexit
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tty
import weakref
from typing import TextIO

from tools import build_mpy
from tools.ptyrelay import Relay, RelayStats

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The simulated Pico's heap. A plain Pico leaves about 190 KB free to MicroPython with
# 4-byte pointers; here they are 8 bytes, so objects take up to twice the room while
# bytecode and strings take the same. 256k here stands for the Pico's 190 KB when about a
# third of the heap is pointers (`make bench` prints the smallest heap a run needs).
HEAP = "256k"
DEFAULT_PROGRAM = "baclofen:500:200"  # DRUG:CONC_UG_PER_ML:DOSE_UG_PER_DAY
# The wall clock a program file's first boot sets: fixed, so that a seeded run is the same
# run every time. 2024-01-01 was a Monday. Days count from 2000-01-01, as the pump's do.
DEFAULT_CLOCK = "2024-01-01T00:00"
CLOCK_EPOCH = datetime.date(2000, 1, 1)
CLOCK_LAST = datetime.date(2199, 12, 31)  # the pump's last day (firmware/pump/clock.py DAY_MAX)
DEFAULT_SPEED = 3600  # one simulated hour per real second
STOP_GRACE_S = 2.0  # SIGTERM, then SIGKILL after this long
DAY_MS = 86400000
FRAMES_PER_REAL_S = 4  # default status frames a real second at a given --speed
FAST_STATUS_MS = 6 * 3600000  # --speed 0: four status frames a simulated day

KEYS_FILE = "keys"  # in the flash directory (docs/security.md)

_live: "weakref.WeakSet[SimPico]" = weakref.WeakSet()


DEVICE_ID_FILE = ".sim-device-id"  # boards/sim: the simulated Pico's unique id, beside its flash
# Options that set up a simulated Pico: given with --port, they would do nothing.
SIM_ONLY_OPTIONS = ("--speed", "--program", "--program-file", "--clock", "--seed", "--fault",
                    "--random-faults", "--fill-ml", "--status-ms", "--flash")


def sim_dev(seed: int) -> str:
    # The id of a simulated Pico whose flash names none (boards/sim): its seed makes it.
    return "sim-%d" % seed


def new_sim_dev(seed: int) -> str:
    # A fresh simulated Pico's id: unique, as every RP2040's is, so that two simulated
    # pumps of one seed never share keys in a key store; the seed stays readable in it.
    return "sim-%d-%s" % (seed, os.urandom(3).hex())


def parse_fill_ml(text: object) -> int:
    # "18.5" (mL) -> nL, exactly; ValueError says what is allowed
    from decimal import Decimal, InvalidOperation
    try:
        d = Decimal(str(text).strip())
    except InvalidOperation:
        raise ValueError("--fill-ml %r: expected a volume in mL, e.g. 20 or 18.5" % (text,)) from None
    if not d.is_finite() or d < 0:
        raise ValueError("--fill-ml %s: expected a volume of 0 mL or more" % text)
    nl = d.scaleb(6)
    if nl != nl.to_integral_value():
        raise ValueError("--fill-ml %s: at most 6 decimals (the pump counts whole nL)" % text)
    return int(nl)


def check_bench_set_up(program: str, fill_nl: int) -> None:
    # What the simulated Pico's first boot does with --program and --fill-ml, done first
    # by a pump core on the host, so a typo fails here with the reason in clinical
    # units, not as a firmware that exits. ValueError says why.
    from tools import clinical, programfile
    head = programfile.board("sim").head
    cap = head.reservoir_capacity_nl
    if fill_nl > cap:
        raise ValueError("--fill-ml %s: the simulated Pico's reservoir holds at most %s"
                         % (clinical.decimal(fill_nl, 6), clinical.ml(cap)))
    if not program:
        return
    drug, conc, dose = parse_program(program)
    from pump.core import Pump
    pump = Pump(head)
    pump.power_up(0)
    reason = pump.set_clock(0, 8766, 0)
    if reason is None and fill_nl:
        reason = pump.fill(0, fill_nl, conc)
    if reason is None:
        reason = pump.set_program(0, {"drug": drug, "conc_ug_per_ml": conc, "dose_ug_per_day": dose})
    if reason is not None:
        raise ValueError("--program %s: the pump would refuse it: %s" % (program, clinical.reason_text(reason)))


def sim_keys(store: object, sim: "SimPico", roles: object, keep: bool = True) -> dict[str, bytes] | None:
    # Keys for a simulated Pico's flash, recorded in `store` (tools.keystore.KeyStore):
    # with keep, a kept flash whose keys file the store still matches keeps its keys
    # (returns None: leave the file); else fresh keys for `roles`, to write before boot.
    from pump import auth
    if keep and sim._flash_arg:
        try:
            with open(os.path.join(sim._flash_arg, KEYS_FILE), "rb") as f:
                on_flash, problem = auth.parse_keys(f.read(), sim.dev)
        except OSError:
            on_flash, problem = {}, "none"
        entry = store.load(sim.dev)  # type: ignore[attr-defined]
        if not problem and on_flash and entry is not None and entry.keys == on_flash:
            return None
    keys: dict[str, bytes] = store.provision(sim.dev, roles)  # type: ignore[attr-defined]
    return keys


def find_micropython() -> str:
    # The venv's micropython beside this interpreter, the repo's venv, then PATH.
    for path in (os.path.join(os.path.dirname(sys.executable), "micropython"),
                 os.path.join(ROOT, ".venv", "bin", "micropython")):
        if os.access(path, os.X_OK):
            return path
    found = shutil.which("micropython")
    if found:
        return found
    raise FileNotFoundError("micropython is not installed; run `make sim` or `make test` "
                            "once so the venv gets it")


def _divisors(n: int) -> list[int]:
    small = [d for d in range(1, int(n ** 0.5) + 1) if n % d == 0]
    return sorted(set(small + [n // d for d in small]))


_DAY_DIVISORS_MS = _divisors(DAY_MS)


def status_period_ms(speed: int) -> int:
    # A few frames per real second at this speed (a live view moves, a log stays
    # readable), and a whole number per simulated day, so that a bounded run's last
    # frame lands exactly on its last midnight.
    if speed == 0:
        return FAST_STATUS_MS
    target = speed * 1000 // FRAMES_PER_REAL_S
    fitting = [d for d in _DAY_DIVISORS_MS if d <= target]
    return fitting[-1] if fitting else 1


def parse_program(spec: str) -> tuple[str, int, int]:
    # DRUG:CONC_UG_PER_ML:DOSE_UG_PER_DAY -> (drug, conc, dose); ValueError says why not.
    parts = spec.split(":")
    if len(parts) != 3 or not parts[0]:
        raise ValueError("program %r: expected DRUG:CONC_UG_PER_ML:DOSE_UG_PER_DAY, "
                         "e.g. baclofen:500:200" % spec)
    try:
        conc, dose = int(parts[1]), int(parts[2])
    except ValueError:
        raise ValueError("program %r: concentration and dose are whole numbers "
                         "(ug/mL, ug/day)" % spec) from None
    return parts[0], conc, dose


def parse_fault(spec: str) -> None:
    # KIND:START[:END][:NAME=VALUE...], checked by the sim board's own parser (the one the
    # firmware side uses); ValueError says why not.
    from boards.sim.faults import parse_spec
    parse_spec(spec)


def parse_clock(text: str) -> tuple[int, int]:
    # "YYYY-MM-DDTHH:MM" (or with a space) -> (days since 2000-01-01, ms after midnight),
    # the pump's set_clock arguments; ValueError says why not.
    try:
        when = datetime.datetime.strptime(text.replace(" ", "T"), "%Y-%m-%dT%H:%M")
    except ValueError:
        raise ValueError("clock %r: expected YYYY-MM-DDTHH:MM, e.g. %s" % (text, DEFAULT_CLOCK)) from None
    if not CLOCK_EPOCH <= when.date() <= CLOCK_LAST:
        raise ValueError("clock %r: the pump's calendar runs from %s to %s" % (text, CLOCK_EPOCH, CLOCK_LAST))
    day = (when.date() - CLOCK_EPOCH).days
    return day, (when.hour * 60 + when.minute) * 60000


def program_file_plan(path: str, clock: str = DEFAULT_CLOCK) -> dict[str, object]:
    # A TOML program file, checked and translated on the host (the unix port has no
    # tomllib), as the firmware's --program-json takes it. ValueError lists every error.
    from tools import programfile
    pf = programfile.load_checked(path)
    plan = pf.wire()
    plan["clock"] = list(parse_clock(clock))
    return plan


# The child's first program, in its new session: take the pty on fd 0 as the session's
# controlling terminal, so a hang-up of the master kills the firmware (see the top), then
# become micropython. Race-free: if the host died before this ran, its master is closed,
# the pty is hung up and the ioctl fails with EIO, so the launcher exits; from the ioctl
# on, the hang-up SIGHUPs us. A separate program rather than a preexec_fn, which may
# deadlock in a parent with threads (ours has the relay).
_LAUNCHER = """\
import fcntl, os, sys, termios
try:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
except OSError as e:
    sys.exit("simpico: cannot make the firmware's pty its controlling terminal: %s" % e)
os.execv(sys.argv[1], sys.argv[1:])
"""


class SimPico:
    """The simulated Pico as a host process with a serial port path.

    start() = open() (ptys and relay: `port` exists, nothing runs yet) + launch() (the
    firmware starts). A client that must see the firmware's first frames opens the port
    between the two.
    """

    def __init__(self, speed: int = DEFAULT_SPEED, days: int = 0,
                 program: str = DEFAULT_PROGRAM, seed: int = 1,
                 status_ms: int | None = None, fill_ml: object = 20,
                 flash: str | None = None, micropython: str | None = None,
                 heap: str = HEAP, program_file: str | None = None,
                 clock: str = DEFAULT_CLOCK, faults: tuple[str, ...] | list[str] = (),
                 random_faults: int = 0, keys: dict[str, bytes] | None = None) -> None:
        # program_file (TOML, docs/programs.md) replaces `program`; it is checked here, so
        # an invalid file fails before anything starts. faults: --fault specs
        # (docs/simulator.md), checked here too; random_faults: that many drawn from seed.
        # keys ({role: 32 bytes}): written to the flash as the pump's `keys` file before
        # the firmware boots (docs/security.md); None leaves the flash's file as it is.
        self.plan = program_file_plan(program_file, clock) if program_file else None
        if self.plan is not None:
            program = ""
        if program:
            # a DRUG:CONC:DOSE program is set up as a clinician would: with the clock set,
            # so a fresh simulated pump starts without the clock_not_set alarm
            drug, conc, dose = parse_program(program)
            self.plan = {"program": {"drug": drug, "conc_ug_per_ml": conc, "dose_ug_per_day": dose},
                         "clock": list(parse_clock(clock))}
        for spec in faults:
            parse_fault(spec)
        self.fill_nl = parse_fill_ml(fill_ml)
        self.faults = list(faults)
        self.random_faults = random_faults
        self.speed = speed
        self.days = days
        self.program = program
        self.seed = seed
        self.status_ms = status_ms
        self.fill_ml = fill_ml
        self.keys = dict(keys) if keys else None
        self.micropython = micropython or find_micropython()
        self.heap = heap
        self._flash_arg = flash
        self.dev = self._device_id(flash, seed)
        self.flash = ""
        self.port = ""
        self.proc: subprocess.Popen[bytes] | None = None
        self.returncode: int | None = None
        self._scratch: str | None = None
        self._fw_master: int | None = None
        self._fw_slave: int | None = None
        self._client_master: int | None = None
        self._relay: Relay | None = None
        self._closed = False

    # -- lifecycle
    def open(self) -> "SimPico":
        if self._relay is not None:
            return self
        _sweep_stale_scratch()
        self._scratch = tempfile.mkdtemp(prefix="simpico-%d-" % os.getpid())
        self.flash = os.path.abspath(self._flash_arg) if self._flash_arg else \
            os.path.join(self._scratch, "flash")
        _live.add(self)
        os.makedirs(self.flash, exist_ok=True)
        with open(os.path.join(self.flash, DEVICE_ID_FILE), "w") as f:
            f.write(self.dev + "\n")
        self._fw_master, self._fw_slave = os.openpty()
        self._client_master, client_slave = os.openpty()
        # Raw both ends a byte crosses: no echo (input would come back as output), no
        # CR/LF translation, no signal characters (0x03 in a frame is data, not Ctrl-C).
        # Settings survive the slave being closed and reopened while the master lives.
        tty.setraw(self._fw_slave)
        tty.setraw(client_slave)
        self.port = os.ttyname(client_slave)
        # Only clients may hold the port's slave, so the relay sees when none does.
        os.close(client_slave)
        self._relay = Relay(self._fw_master, self._client_master)
        self._relay.start()
        return self

    def launch(self) -> "SimPico":
        self.open()
        if self.proc is not None:
            return self
        env = dict(os.environ)
        # The firmware as a Pico holds it: compiled to .mpy (build/sim, rebuilt when a
        # source changes), laid out as on the flash; .frozen is the port's frozen
        # modules (argparse). Compiling source inside the 192 KB heap would add the
        # compiler's own peak, which a deployed pump never pays.
        env["MICROPYPATH"] = ".frozen:%s" % build_mpy.build_sim()
        if self.plan is not None:
            assert self._scratch is not None
            with open(os.path.join(self._scratch, "program.json"), "w") as f:
                json.dump(self.plan, f)
        if self.keys:
            self.write_keys(self.keys)
        self.proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _LAUNCHER] + self.argv(),
            stdin=self._fw_slave, stdout=self._fw_slave, stderr=subprocess.PIPE,
            cwd=self._scratch, env=env, start_new_session=True)
        # The child has its copies; once it exits, the master reads EOF/EIO.
        os.close(self._fw_slave)  # type: ignore[arg-type]
        self._fw_slave = None
        assert self._relay is not None and self.proc.stderr is not None
        self._relay.watch_stderr(self.proc.stderr.fileno())
        return self

    def start(self) -> "SimPico":
        return self.launch()

    @staticmethod
    def _device_id(flash: str | None, seed: int) -> str:
        # the simulated Pico's device id (boards/sim), which its keys are bound to: the
        # one a kept flash names, else a new unique one (a flash from before ids were
        # kept there has the seed's)
        if flash:
            try:
                with open(os.path.join(flash, DEVICE_ID_FILE)) as f:
                    named = f.read().strip()
                if named:
                    return named
            except OSError:
                pass
            if os.path.exists(os.path.join(flash, "state")):
                return sim_dev(seed)
        return new_sim_dev(seed)

    def write_keys(self, keys: dict[str, bytes]) -> str:
        # The pump's `keys` file in the flash directory, as provisioning writes it on a
        # Pico; the firmware reads it at boot. Returns its path.
        from tools.keystore import keys_file, write_private
        self.open()
        os.makedirs(self.flash, exist_ok=True)
        path = os.path.join(self.flash, KEYS_FILE)
        write_private(path, keys_file(self.dev, keys))
        return path

    def argv(self) -> list[str]:
        args = [self.micropython, "-X", "heapsize=" + self.heap,
                os.path.join(build_mpy.SIM_DIR, "main.py"),
                "--speed", str(self.speed), "--days", str(self.days),
                "--seed", str(self.seed), "--flash", self.flash,
                "--fill-nl", str(self.fill_nl), "--link", "stdio"]
        if self.plan is not None:
            args += ["--program-json", os.path.join(self._scratch or ".", "program.json")]
        elif self.program:
            args += ["--program", self.program]
        if self.status_ms:
            args += ["--status-ms", str(self.status_ms)]
        for spec in self.faults:
            args += ["--fault", spec]
        if self.random_faults:
            args += ["--random-faults", str(self.random_faults)]
        return args

    def poll(self) -> int | None:
        # The firmware's exit status, or None while it runs (or before launch).
        if self.proc is not None and self.returncode is None:
            self.returncode = self.proc.poll()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        # Raises subprocess.TimeoutExpired when it still runs after `timeout` seconds.
        assert self.proc is not None, "launch() first"
        self.returncode = self.proc.wait(timeout)
        return self.returncode

    def wait_drained(self, timeout: float | None = None) -> bool:
        # True once the firmware has exited and all it wrote reached the port (or was
        # dropped for want of a client).
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
        # What the firmware said outside its frames, then its stderr. The unix port
        # prints an uncaught exception's traceback on stdout, that is on the serial
        # link, as a Pico prints it on its USB REPL; SystemExit messages go to stderr.
        tail = self._relay.output_tail() if self._relay else b""
        lines = tail.decode("utf-8", "replace").split("\n")
        if self.stats.from_firmware_bytes > len(tail):
            lines = lines[1:]  # the tail starts mid-line
        lines = [line for line in lines if line.strip() and not line.startswith("~")]
        text = "\n".join(lines)
        err = self.stderr.strip()
        return (text + "\n" + err if text and err else text or err).rstrip()

    def stop(self) -> int | None:
        # Idempotent and safe to call from a finally block or atexit: the firmware's
        # whole process group goes, is reaped, and every fd and scratch dir is released.
        # Every step may run twice: a second Ctrl-C can cut this short, and then the
        # atexit hook (or the pty hang-up) finishes the job.
        if self._closed:
            return self.returncode
        proc = self.proc
        if proc is not None:
            if proc.poll() is None:
                # Unreaped, so its pid and process group id cannot have been reused.
                _kill_group(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(STOP_GRACE_S)
                except subprocess.TimeoutExpired:
                    _kill_group(proc.pid, signal.SIGKILL)
                    proc.wait()
            self.returncode = proc.returncode
        if self._relay is not None:
            self._relay.stop()
            self._relay.join(5)
            self._relay.close()
        if proc is not None and proc.stderr is not None:
            proc.stderr.close()
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

    def __enter__(self) -> "SimPico":
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __del__(self) -> None:
        try:
            self.stop()
        except Exception:
            pass


def _sweep_stale_scratch() -> None:
    # A host killed outright (SIGKILL, power loss) leaves its scratch dir behind; the
    # dir names its owner's pid, so the next run removes those whose owner is gone.
    root = tempfile.gettempdir()
    for name in os.listdir(root):
        parts = name.split("-")
        if len(parts) < 3 or parts[0] != "simpico" or not parts[1].isdigit():
            continue
        try:
            os.kill(int(parts[1]), 0)
        except ProcessLookupError:
            shutil.rmtree(os.path.join(root, name), ignore_errors=True)
        except OSError:
            pass  # someone else's process: alive


def _kill_group(pid: int, sig: int) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        pass


@atexit.register
def _stop_all() -> None:
    for sim in list(_live):
        sim.stop()


class Stopped(Exception):
    # Raised in the main thread by SIGTERM/SIGHUP so that `finally` blocks run.
    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def raise_on_termination() -> None:
    # SIGTERM (kill, systemd, CI timeouts) and SIGHUP (the terminal went away) unwind
    # like Ctrl-C does, so the firmware is stopped on the way out.
    def handler(signum: int, frame: object) -> None:
        raise Stopped(signum)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, handler)
    # A shell script's `cmd &` starts with SIGINT ignored, and Python then leaves it so;
    # `kill -INT` must still stop us (and the firmware) rather than do nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)


def add_sim_options(ap: argparse.ArgumentParser) -> None:
    # The options shared by `python -m tools.simpico` and `tools.console --sim`.
    ap.add_argument("--speed", type=int, default=DEFAULT_SPEED,
                    help="simulated time per real time (default %(default)s: an hour a "
                         "second); 0 = as fast as possible")
    ap.add_argument("--days", type=int, default=0,
                    help="stop after this many simulated days (default: run until stopped)")
    ap.add_argument("--program", default=None,
                    help="DRUG:CONC_UG_PER_ML:DOSE_UG_PER_DAY for a fresh flash "
                         "(default %s)" % DEFAULT_PROGRAM)
    ap.add_argument("--program-file", default=None, metavar="PATH",
                    help="a TOML program file (docs/programs.md) for a fresh flash, instead of "
                         "--program: checked and translated here, then its program, limits and "
                         "one-off actions are set on first boot")
    ap.add_argument("--clock", default=DEFAULT_CLOCK, metavar="YYYY-MM-DDTHH:MM",
                    help="the wall clock set on first boot with --program or --program-file (default "
                         "%(default)s, a Monday)")
    ap.add_argument("--seed", type=int, default=1,
                    help="seed of the simulation: sensor noise, CSF pressure, random faults")
    ap.add_argument("--fault", action="append", default=[], metavar="KIND:START[:END][:NAME=VALUE]",
                    help="inject a fault (repeatable); times in hours from the start, or with "
                         "ms/s/m/h/d, e.g. occlusion:2:3 or missed_pulses:1d:2d:percent=20 "
                         "(docs/simulator.md)")
    ap.add_argument("--random-faults", type=int, default=0, metavar="N",
                    help="N faults drawn from --seed within --days (or 30 days); "
                         "tools.simpico lists them on stderr")
    ap.add_argument("--fill-ml", default="20", metavar="ML",
                    help="reservoir fill on a fresh flash, mL, e.g. 18.5 (default %(default)s; 0: programmed "
                         "but empty, for a first fill from the console)")
    ap.add_argument("--status-ms", type=int, default=None,
                    help="simulated ms between status frames (default: about %d a real "
                         "second, a whole number a day; 6 h at --speed 0)" % FRAMES_PER_REAL_S)
    ap.add_argument("--flash", default=None,
                    help="host directory kept as the Pico's flash (default: a scratch "
                         "directory, removed at exit)")


def check_sim_options(ap: argparse.ArgumentParser, opts: argparse.Namespace) -> None:
    if opts.speed < 0:
        ap.error("--speed must be 0 (as fast as possible) or more")
    if opts.days < 0:
        ap.error("--days must be 0 (no limit) or more")
    if opts.status_ms is not None and opts.status_ms <= 0:
        ap.error("--status-ms must be positive")
    if opts.program and opts.program_file:
        ap.error("give --program or --program-file, not both")
    for spec in opts.fault:
        try:
            parse_fault(spec)
        except ValueError as e:
            ap.error("--fault %s: %s" % (spec, e))
    if opts.random_faults < 0:
        ap.error("--random-faults must be 0 or more")
    try:
        fill_nl = parse_fill_ml(opts.fill_ml)
        if not opts.program_file:
            check_bench_set_up(opts.program or DEFAULT_PROGRAM, fill_nl)
    except ValueError as e:
        ap.error(str(e))
    try:
        parse_clock(opts.clock)
    except ValueError as e:
        ap.error(str(e))
    if opts.program_file:
        # every error of the file, before anything starts
        try:
            program_file_plan(opts.program_file, opts.clock)
        except ValueError as e:
            ap.error(str(e))


def sim_from_options(opts: argparse.Namespace, status_ms: int | None) -> SimPico:
    return SimPico(speed=opts.speed, days=opts.days, program=opts.program or DEFAULT_PROGRAM,
                   seed=opts.seed, status_ms=status_ms, fill_ml=opts.fill_ml, flash=opts.flash,
                   program_file=opts.program_file, clock=opts.clock, faults=opts.fault,
                   random_faults=opts.random_faults)


def report_exit(sim: SimPico, out: TextIO = sys.stderr) -> None:
    # A firmware that died says why: its exit status and the tail of its stderr.
    rc = sim.poll()
    text = sim.last_words()
    if rc:
        print("simpico: the firmware exited with status %d" % rc, file=out)
    if text:
        print(text, file=out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m tools.simpico",
        description="Run the simulated Pico; its USB serial is the pty path printed first.")
    add_sim_options(ap)
    ap.add_argument("--keys", metavar="DIR", default=None,
                    help="a host key store (tools.console --keys): the pump's command keys go into its flash "
                         "before it boots and into this store, so consoles with --keys DIR can command it (a "
                         "kept --flash whose keys the store matches keeps them)")
    opts = ap.parse_args(argv)
    check_sim_options(ap, opts)
    raise_on_termination()
    sim = sim_from_options(opts, opts.status_ms or status_period_ms(opts.speed))
    if opts.keys:
        from tools.keystore import ROLES, KeyStore, KeyStoreError
        store = KeyStore(opts.keys)
        try:
            sim.keys = sim_keys(store, sim, list(ROLES))
        except KeyStoreError as e:
            print("simpico: %s" % e, file=sys.stderr)
            return 2
        print("simpico: the keys of pump %s are in %s" % (sim.dev, store.path(sim.dev)), file=sys.stderr)
    if opts.random_faults:
        # the schedule the firmware will draw from the same seed (boards/sim/faults.py)
        from boards.sim.faults import random_schedule
        for f in random_schedule(opts.seed, opts.days, opts.random_faults):
            print("simpico: random fault --fault %s" % f.spec(), file=sys.stderr)
    try:
        sim.open()
        print(sim.port, flush=True)
        sim.launch()
        print("simpico: simulated Pico %s (pid %s) on %s; Ctrl-C stops it" % (sim.dev, sim.pid, sim.port),
              file=sys.stderr, flush=True)
        while sim.poll() is None:
            try:
                sim.wait(0.2)
            except subprocess.TimeoutExpired:
                pass
        # Bounded run over: let an attached client take the last frames before the
        # port hangs up.
        sim.wait_drained(2.0)
        if sim.attached:
            time.sleep(0.5)
        report_exit(sim)
        return sim.returncode or 0
    except KeyboardInterrupt:
        return 0
    except Stopped as e:
        return 128 + e.signum
    finally:
        sim.stop()


if __name__ == "__main__":
    sys.exit(main())
