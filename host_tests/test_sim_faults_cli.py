# The host side of fault injection: tools.simpico and tools.console --sim take --fault and
# --random-faults, check them before anything starts and hand them to the firmware.
import argparse

import pytest

from tools import simpico


def _opts(*argv):
    ap = argparse.ArgumentParser()
    simpico.add_sim_options(ap)
    opts = ap.parse_args(list(argv))
    simpico.check_sim_options(ap, opts)
    return opts


def test_faults_reach_the_firmware_command_line():
    opts = _opts("--fault", "occlusion:2:3", "--fault", "missed_pulses:1d:2d:percent=20", "--random-faults", "2")
    sim = simpico.sim_from_options(opts, 60000)
    argv = sim.argv()
    assert argv[argv.index("--fault") + 1] == "occlusion:2:3"
    assert argv.count("--fault") == 2 and "missed_pulses:1d:2d:percent=20" in argv
    assert argv[argv.index("--random-faults") + 1] == "2"
    assert "--fault" not in simpico.sim_from_options(_opts(), 60000).argv()


def test_a_bad_fault_stops_before_anything_starts(capsys):
    with pytest.raises(SystemExit) as e:
        _opts("--fault", "occlusion:3:2")
    assert e.value.code == 2 and "must end after it starts" in capsys.readouterr().err
    with pytest.raises(ValueError):
        simpico.SimPico(faults=["leak:1"])



def test_the_simulator_doc_lists_every_fault_kind_with_its_defaults():
    import os
    import re
    from boards.sim import faults
    doc = open(os.path.join(simpico.ROOT, "docs", "simulator.md")).read()
    table = doc[doc.index("## Faults"):doc.index("### From the command line")]
    rows = dict(re.findall(r"^\| `(\w+)` \|([^|]*)\|", table, re.M))
    assert set(rows) == set(faults.KIND_NAMES)
    for kind, text in rows.items():
        text = text.replace("`", "")
        for name, default in faults.KINDS[kind].items():
            assert "%s (%s" % (name, default) in text, (kind, name)
