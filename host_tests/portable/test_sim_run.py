# The simulator's command line (boards/sim/run.py) with faults: --fault and
# --random-faults schedule what they say, and the faults reach the running firmware.
# Its own module: the whole firmware runs here, so the unix port runs it in a fresh
# process (and heap) of its own.
#
# mp-heap: 256k
# (the simulated Pico's own heap, tools/simpico.py: the whole simulated board and its
# argument parsing sit beside the firmware here)
from boards.sim import Board
from boards.sim import faults as fmod
from boards.sim import run as simrun
from boards.stdiolink import NullLink
from check import raises, scratch_dir


def _board(tag, seed=1):
    b = Board(scratch_dir(tag), NullLink(), seed=seed)
    b.head.reservoir_nl = 10000000
    b.head.enable(True)
    return b


def test_the_command_line_takes_repeated_faults():
    specs, rest = simrun.take_faults(["--seed", "3", "--fault", "stall:1:2", "--fault=occlusion:4", "--days", "1"])
    assert specs == ["stall:1:2", "occlusion:4"] and rest == ["--seed", "3", "--days", "1"]
    assert simrun.parse(rest + ["--random-faults", "4"]).random_faults == 4
    # what --fault and --random-faults schedule: the given faults, then the seed's draw
    b = _board("cli-schedule")
    simrun.schedule_faults(b, ["stall:1:2"], 3, 7, 0)
    assert [f.spec() for f in b.faults.all] == ["stall:1h:2h"] + [f.spec() for f in fmod.random_schedule(7, 0, 3)]
    assert all(f.start_ms < fmod.RANDOM_DAYS * 86400000 for f in b.faults.all)
    raises(SystemExit, simrun.schedule_faults, b, ["stall:2:1"], 0, 7, 0)


def test_faults_from_the_command_line_reach_the_running_firmware():
    # the real shell and core on the sim board for a day, stalled for an hour and reset
    # by the watchdog at 6 h: the firmware sees unconfirmed strokes and a second boot
    # that reports the watchdog
    flash = scratch_dir("cli")
    a = simrun.main(["--link", "null", "--days", "1", "--flash", flash, "--program", "baclofen:500:200",
                     "--status-ms", "86400000", "--fault", "stall:2:3", "--fault", "watchdog_reset:6"])
    b = a.board
    assert b.clock.ms == 86400000
    assert b.head.rotor_faults.strokes_stalled > 0
    assert b.watchdog.caused_reset()
    log = b.storage.read("log")
    assert b'"ev":"strokes_unconfirmed"' in log
    boots = [r for r in log.split(b"\n") if b'"ev":"power_up"' in r]
    assert len(boots) == 2
    assert b'"watchdog_reset":false' in boots[0] and b'"watchdog_reset":true' in boots[1]
    assert b.line.pumped_nl == b.line.delivered_nl + b.line.stored_nl == b.head.pumped_nl
