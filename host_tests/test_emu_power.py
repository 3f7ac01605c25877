# Power cuts on the emulated Pico at seeded random busy-cycle counts, while it delivers at
# its top rate and takes signed commands (each one a state write to LittleFS first): the
# flash file keeps what was written up to the cut, a page or sector in progress half done,
# and the next power-up starts from it. Every boot must recover its program, state and
# keys; the reservoir it reports is never more than what the head really left in it; the
# command counters never go back below one the pump answered. A failure prints its seed.
import json
import random
import time

import emukit
from emukit import hello, wait_for
from pump.auth import CLINICIAN, PATIENT
from test_emu_pump import FAST

bench = emukit.bench  # the fixture

SEED = 20261206
TRIALS = 6
# A cut falls within this many busy cycles of the moment it is set: a command (about a
# million), its state write (a 4 KB erase alone is 45 ms, 5.6 million) and the strokes
# and passes around them
WINDOW_CYCLES = 20000000
FILL_NL = 20000000


def cut_report(stderr):
    lines = [line for line in stderr.splitlines() if line.startswith("emu: power cut ")]
    return json.loads(lines[-1][len("emu: power cut "):])


def signed(link, store, role, cmd, args):
    # a signed command sent without waiting for its answer: (seq, counter)
    auth = store.sign(link.dev, role, cmd, args, link.pump_ctr.get(role, 0))
    return link.send({"cmd": cmd, "args": args, "auth": auth}), auth["ctr"]


def test_power_cuts_during_delivery_commands_and_state_writes_lose_nothing(bench):
    rng = random.Random(SEED)
    b = bench().start().setup(FAST, fill_nl=FILL_NL)
    link = b.link
    hello(link)
    pumped_nl = 0  # what the head really moved, over every power-up
    acked = {CLINICIAN: 0, PATIENT: 0}  # the highest counter the pump answered ok
    in_flash = []  # the flash operation each cut fell into (None: between them)
    for trial in range(TRIALS):
        in_cycles = rng.randrange(1, WINDOW_CYCLES)
        what = "trial %d of seed %d: cut %d busy cycles in" % (trial, SEED, in_cycles)
        b.pico.control("cut", in_cycles=in_cycles)
        pending = {}
        commands = [(PATIENT, "silence", {"minutes": 1 + trial % 15}),
                    (CLINICIAN, "bolus", {"dose_ng": 13 * (1 + trial), "duration_min": 5}),
                    (CLINICIAN, "ack", {})]
        deadline = time.monotonic() + 60
        while b.pico.poll() is None:
            assert time.monotonic() < deadline, what + ": the cut never came"
            if commands and not pending:
                role, cmd, args = commands.pop(0)
                seq, ctr = signed(link, b.store, role, cmd, args)
                pending[seq] = (role, ctr)
            for frame in link.receive(0.05):
                body = frame.body
                if body.get("t") == "result" and body.get("re") in pending:
                    role, ctr = pending.pop(body["re"])
                    if body.get("ok") or body.get("code") == "refused":
                        acked[role] = max(acked[role], ctr)  # its counter is spent
        report = cut_report(b.pico.stderr)
        pumped_nl += report["world"]["pumped_nl"]
        in_flash.append(report["flash_op"])
        b.pico.relaunch(cut_at_cycle=-1)
        pump = hello(link)
        for role in acked:
            assert pump["ctr"][role] >= acked[role], "%s: %s counter went back: %r < %r" % (
                what, role, pump["ctr"], acked)
        link.pump_ctr = dict(pump["ctr"])
        st = wait_for(lambda: link.status(60), 90, "a status after the power-up")
        assert st["drug"] == "baclofen" and st["state"] == "running", (what, st["state"], st["stop_reason"])
        assert not any(a[0] == "storage_error" for a in st["alarms"]), (what, st["alarms"])
        assert pump["roles"] == ["clinician", "patient"], (what, pump)
        assert st["reservoir_nl"] <= FILL_NL - pumped_nl, "%s: the pump says %d nL left, the head left %d" % (
            what, st["reservoir_nl"], FILL_NL - pumped_nl)
    print("cuts inside a flash erase or program:", in_flash)
    records = link.log_export().records
    power_ups = [r for r in records if r.get("ev") == "power_up"]
    assert len(power_ups) >= TRIALS, len(power_ups)
