# The simulated Pico as a host sees it: the real firmware on the MicroPython unix port,
# its USB serial on a real pty, reached through tools.link exactly as a Pico would be.
import os
import signal
import subprocess
import sys
import tempfile
import textwrap
import time


from boards.sim import config
from procs import firmware_processes, frames_of_bounded_run, wait_until
from pump import wire
from tools.link import Link
from tools.simpico import SimPico

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DAY_MS = 86400000
HOUR_MS = 3600000
# 500 ug/mL, 200 ug/day, 250 nL strokes: 125 ng a stroke, 1600 strokes a day.
PROGRAM = "baclofen:500:200"
STROKES_PER_DAY = 200 * 1000 * 1000 // (500 * config.STROKE_NL)
assert STROKES_PER_DAY == 1600


def elapsed_ms(a, b):
    return (b["up_day"] - a["up_day"]) * DAY_MS + b["up_ms"] - a["up_ms"]


def test_status_request_is_answered_through_the_port_with_its_seq(tmp_path):
    with SimPico(speed=3600, program=PROGRAM, status_ms=900000, flash=str(tmp_path / "flash")) as sim:
        assert sim.port.startswith("/dev/pts/") and sim.pid
        with Link(sim.port) as link:
            assert os.isatty(link.fd)
            earlier = link.send({"cmd": "status"})  # its result arrives first; not ours
            reply = link.request({"cmd": "status"})
            assert reply.result["re"] == (earlier + 1) % wire.SEQ_MODULO
            assert [f.body["re"] for f in reply.frames if f.body["t"] == "result"] == [earlier, reply.result["re"]]
            assert reply.ok and reply.result["code"] == "ok"
            status = reply.last("status")
            assert status["drug"] == "baclofen"
            assert status["conc_ug_per_ml"] == 500 and status["dose_ug_per_day"] == 200
            assert status["rate_nl_per_day"] == STROKES_PER_DAY * config.STROKE_NL
            assert status["state"] == "running"
            # a second command gets its own answer, matched by seq, not the first one's
            other = link.request({"cmd": "no_such_command"})
            assert other.result["re"] != reply.result["re"]
            assert other.result["ok"] is False and other.result["code"] == "unknown_command"
        assert sim.poll() is None


def test_the_pump_resyncs_after_garbage_on_the_port(tmp_path):
    garbage = (
        b"\x03\x03\x04\x1a"  # Ctrl-C, Ctrl-D, Ctrl-Z: data on a raw pty, never signals
        + bytes(range(0x80, 0x100))
        + b'~1 7 {"cmd":"status"'  # torn frame, abandoned by the next "~"
        + b'~1 8 {"cmd":"status"} 00000000\n'  # bad CRC
        + b"~" + b"x" * 3000 + b"\n"  # oversize
        + b"\r\n\n~~~ hello >>> \n"
    )
    with SimPico(speed=3600, program=PROGRAM, flash=str(tmp_path / "flash")) as sim:
        with Link(sim.port) as link:
            link.serial.write(garbage)
            status = link.status()
            assert status["drug"] == "baclofen"
            assert link.status()["up_ms"] >= status["up_ms"]
        time.sleep(0.2)
        assert sim.poll() is None, sim.stderr
        assert sim.stats.to_firmware_bytes >= len(garbage)


def test_the_link_resyncs_on_garbage_from_the_pump_side():
    # No firmware: a pty of our own plays the pump and sends noise between frames.
    master, slave = os.openpty()
    try:
        link = Link(os.ttyname(slave))
        good = [wire.encode(5, {"t": "status", "n": 1}), wire.encode(6, {"t": "event", "n": 2}),
                wire.encode(9, {"t": "status", "n": 3})]
        torn = wire.encode(7, {"t": "status", "n": 9})[:20]
        bad_crc = bytearray(wire.encode(8, {"t": "status", "n": 9}))
        bad_crc[-3] ^= 1
        os.write(master, b"\x00\xffnoise" + good[0] + torn + good[1] + b"junk" + bytes(bad_crc) + good[2])
        frames = []
        wait_until(lambda: frames.extend(link.receive(0.1)) or len(frames) >= 3, 5, "3 frames")
        assert [f.body["n"] for f in frames] == [1, 2, 3]
        assert link.bad_crc == 1 and link.bad_format >= 1 and link.garbage_bytes >= 7
        assert link.frames_lost == 2  # seqs 7 and 8 never arrived whole
        link.close()
    finally:
        os.close(master)
        os.close(slave)


def test_a_client_detaches_and_reattaches_while_the_firmware_runs_on(tmp_path):
    # As fast as possible, one status frame an hour: ~9 kB of output a simulated day.
    with SimPico(speed=0, program=PROGRAM, status_ms=HOUR_MS, flash=str(tmp_path / "flash")) as sim:
        with Link(sim.port) as link:
            before = link.status()
        wait_until(lambda: not sim.attached, 5, "the relay sees the client gone")
        dropped = sim.stats.dropped_bytes
        # Nobody reads now. A firmware that blocked on its writes would stall within the
        # kernel's pty buffer (64 kB at most); keep it detached for several times that.
        wait_until(lambda: sim.stats.dropped_bytes - dropped >= 300000, 20,
                   "300 kB of output dropped while detached")
        assert sim.poll() is None, sim.stderr
        with Link(sim.port) as link:
            after = link.status()
        # 300 kB of hourly status frames (plus a few events) spans this many days at least
        frame_bytes = len(wire.encode(65535, after)) + 16
        days = 300000 // frame_bytes // 24 - 1
        assert days >= 10  # (a status frame is about 1 kB)
        assert elapsed_ms(before, after) >= days * DAY_MS, (before, after, days)
        assert after["strokes_programmed"] >= before["strokes_programmed"] + days * STROKES_PER_DAY
        assert sim.stats.attaches == 2 and sim.stats.detaches >= 1


def test_a_bounded_run_ends_by_itself_with_the_exact_strokes(tmp_path):
    days = 2
    sim = SimPico(speed=0, days=days, program=PROGRAM, status_ms=HOUR_MS, flash=str(tmp_path / "flash"))
    frames, link = frames_of_bounded_run(sim)  # every frame, the link attached before launch
    try:
        statuses = [f.body for f in frames if f.body["t"] == "status"]
        events = [f.body["ev"] for f in frames if f.body["t"] == "event"]
        assert events[:1] == ["power_up"]
        assert link.frames_lost == 0 and link.bad_crc == 0
        assert len(statuses) == days * 24 + 1  # on the hour, from 00:00 of day 0 to the end
        last = statuses[-1]
        assert (last["up_day"], last["up_ms"]) == (days, 0)
        assert last["strokes_programmed"] == days * STROKES_PER_DAY
        # confirmed strokes are the ones the simulated rotor saw; at most the one
        # commanded at the final instant is still turning
        confirmed = last["strokes_confirmed"]
        assert days * STROKES_PER_DAY - 1 <= confirmed <= days * STROKES_PER_DAY
        assert last["delivered_nl"] == confirmed * config.STROKE_NL
        assert last["reservoir_nl"] == 20000000 - confirmed * config.STROKE_NL
        link.close()
    finally:
        sim.stop()


def _open_fds():
    return set(os.listdir("/proc/self/fd"))


def test_stopping_leaves_no_process_no_fd_and_no_scratch_dir(tmp_path):
    marker = str(tmp_path / "flash")
    fds = _open_fds()
    with SimPico(speed=3600, program=PROGRAM, flash=marker) as sim:
        with Link(sim.port) as link:
            link.status()
        pid = sim.pid
        scratch = sim._scratch
        assert firmware_processes(marker) == [pid]
    assert not os.path.exists("/proc/%d" % pid)  # killed and reaped
    assert firmware_processes(marker) == []
    assert not os.path.exists(scratch)
    assert _open_fds() == fds
    assert sim.returncode is not None
    sim.stop()  # a second stop is harmless


def test_the_firmware_dies_with_its_host_even_on_sigkill(tmp_path):
    # No cleanup code runs on SIGKILL; the pty hang-up must take the firmware down. A
    # bounded run, because its loop would go on to the end without a link.
    marker = str(tmp_path / "flash")
    script = textwrap.dedent("""
        import os, signal, sys
        sys.path.insert(0, %r)
        from tools.simpico import SimPico
        sim = SimPico(speed=3600, days=365, flash=%r).start()
        print(sim.pid, flush=True)
        sys.stdin.readline()
        os.kill(os.getpid(), signal.SIGKILL)
    """) % (ROOT, marker)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    host = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True,
                            env=dict(os.environ, TMPDIR=str(scratch)))
    try:
        pid = int(host.stdout.readline())
        # (the launcher may still be exec'ing micropython: its command line is empty then)
        wait_until(lambda: firmware_processes(marker) == [pid], 5, "the firmware runs")
        host.stdin.write("\n")
        host.stdin.flush()
        assert host.wait(10) == -signal.SIGKILL
        wait_until(lambda: not firmware_processes(marker), 5, "the orphaned firmware is gone")
        # its scratch dir outlived it; the next SimPico sweeps it away
        (stale,) = os.listdir(scratch)
        assert stale.startswith("simpico-%d-" % host.pid)
        old_tmp = tempfile.tempdir
        tempfile.tempdir = str(scratch)
        try:
            with SimPico(speed=3600, flash=str(tmp_path / "flash2")) as sim:
                assert os.listdir(scratch) == [os.path.basename(sim._scratch)]
        finally:
            tempfile.tempdir = old_tmp
        assert os.listdir(scratch) == []
    finally:
        host.kill()
        host.wait()
        for pid in firmware_processes(marker):
            os.kill(pid, signal.SIGKILL)


def _ignore_sigint():
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_simpico_cli_prints_its_port_and_ctrl_c_stops_everything(tmp_path):
    marker = str(tmp_path / "flash")
    # Started as a shell script's `cmd &` starts it: with SIGINT ignored. kill -INT must
    # still stop it.
    cli = subprocess.Popen([sys.executable, "-m", "tools.simpico", "--speed", "3600", "--flash", marker],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           preexec_fn=_ignore_sigint)
    try:
        port = cli.stdout.readline().strip()
        assert port.startswith("/dev/pts/")
        with Link(port) as link:
            assert link.status()["drug"] == "baclofen"  # the default program
        assert len(firmware_processes(marker)) == 1
        cli.send_signal(signal.SIGINT)
        assert cli.wait(10) == 0, cli.stderr.read()
        assert firmware_processes(marker) == []
    finally:
        cli.kill()
        cli.wait()


def test_simpico_cli_sigterm_stops_everything(tmp_path):
    marker = str(tmp_path / "flash")
    cli = subprocess.Popen([sys.executable, "-m", "tools.simpico", "--flash", marker],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert cli.stdout.readline().startswith("/dev/pts/")
        wait_until(lambda: firmware_processes(marker), 5, "the firmware runs")
        cli.send_signal(signal.SIGTERM)
        assert cli.wait(10) == 128 + signal.SIGTERM
        assert firmware_processes(marker) == []
    finally:
        cli.kill()
        cli.wait()


def test_a_firmware_that_dies_is_reported_with_its_reason(tmp_path):
    # A dose far over the pump's limit: the command line refuses it before anything
    # starts, with the pump's own reason in clinical units ...
    proc = subprocess.run([sys.executable, "-m", "tools.simpico", "--speed", "0",
                           "--program", "baclofen:500:999999", "--flash", str(tmp_path / "flash")],
                          cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert ("--program baclofen:500:999999: the pump would refuse it: dose 999999 µg/day: outside the allowed "
            "range 1..3000 µg/day") in proc.stderr
    # ... and a firmware that refuses to provision (started from Python) exits 1, saying why
    with SimPico(speed=0, program="baclofen:500:999999", flash=str(tmp_path / "f2")) as sim:
        assert sim.wait(10) == 1
        assert sim.wait_drained(5)
        assert "program refused: dose_ug_per_day=999999" in sim.last_words()
    # and a crash shows its traceback
    sim = SimPico(speed=0, flash=str(tmp_path / "f3"))
    sim.plan = None
    sim.program = "baclofen:x:1"  # past the host-side check, as a hand-made argv would be
    with sim:
        assert sim.wait(10) == 1
        assert sim.wait_drained(5)
        words = sim.last_words()
        assert "Traceback" in words and "ValueError" in words, words
        assert "~1 " not in words  # frames are not "last words"


def test_the_firmware_pty_is_raw(tmp_path):
    # Echo would send commands back as "output"; ONLCR would turn "\n" into "\r\n".
    with SimPico(speed=3600, flash=str(tmp_path / "flash")) as sim:
        with Link(sim.port) as link:
            link.status()
            seq = link.send({"cmd": "status"})
            deadline = time.monotonic() + 3
            raw = b""
            while b'"re":%d' % seq not in raw and time.monotonic() < deadline:
                if link._poll.poll(100):
                    raw += os.read(link.fd, 65536)
        assert b"\r\n" not in raw
        assert b'~1 %d {"cmd":"status"}' % seq not in raw  # our command is not echoed

