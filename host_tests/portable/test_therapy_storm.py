# Hard limits under a storm of patient and clinician bolus requests, 30 simulated days on
# both runtimes (a module of its own: it needs a fresh MicroPython heap): no 24 h window
# of commanded drug exceeds the maximum, lockouts and caps hold, every refusal is an event.
from array import array

from corekit import Bench, make_pump

from boards.sim.rng import Rng

DAY_MS = 86400000
MIN_MS = 60000
RING = 400  # > the strokes 150 ug in 24 h can be (300 of 0.5 ug)


def test_limits_and_lockouts_hold_under_a_bolus_storm():
    rng = Rng(11)
    b = Bench(make_pump(status_period_ms=DAY_MS), keep=0)
    b.boot()
    p = b.pump
    # 100 ug/day + 4 patient boluses of 10 ug fit 150 ug; clinician boluses compete for the rest
    limits = {"max_rate_ng_per_day": 100000, "max_24h_ng": 150000, "max_bolus_ng": 20000}
    pb = {"dose_ng": 10000, "duration_min": 10, "lockout_min": 90, "max_per_24h": 4}
    assert p.set_limits(b.board_now, limits) is None
    assert p.fill(b.board_now, 40000000, 2000) is None
    assert p.set_program(b.board_now, {"drug": "baclofen", "conc_ug_per_ml": 2000, "dose_ug_per_day": 100,
                                       "patient_bolus": pb}) is None
    # the stroke commands of the last 24 h, in a ring allocated up front (a list that
    # keeps growing fragments a 192 KB heap): times and drug
    ring_t = array("q", bytes(8 * RING))  # ms over 30 days outgrow 32 bits
    ring_ng = array("i", bytes(4 * RING))
    head = tail = 0
    window = 0
    accepted = []
    refusals = 0
    while b.elapsed_ms < 30 * DAY_MS:
        wait = p.tick(b.board_now)
        hop = max(1, min(wait if wait > 0 else 1, 1 + rng.below(600000)))
        b.elapsed_ms += hop
        b.board_now = (b.board_now + hop) & ((1 << 30) - 1)
        p.tick(b.board_now)
        b._collect()
        if b.in_motor:
            # the window ending at this command, checked as it happens
            ring_t[tail] = b.elapsed_ms
            ring_ng[tail] = b.in_motor * 500
            window += b.in_motor * 500
            tail = (tail + 1) % RING
            assert tail != head, "more commands in 24 h than the ring holds"
            while ring_t[head] <= b.elapsed_ms - DAY_MS:
                window -= ring_ng[head]
                head = (head + 1) % RING
            assert window <= limits["max_24h_ng"], (b.elapsed_ms, window)
            p.rotor(b.board_now, b.in_motor)
            b.in_motor = 0
            b._collect()
        if rng.below(40) == 0:
            if rng.below(3):
                reason = p.patient_bolus(b.board_now)
                if reason is None:
                    accepted.append(b.elapsed_ms)
            else:
                reason = p.bolus_request(b.board_now, 2500 * (1 + rng.below(8)), 10 + rng.below(50))
            refusals += reason is not None
            b._collect()
    for a, c in zip(accepted, accepted[1:]):
        assert c - a >= pb["lockout_min"] * MIN_MS
    for i, t in enumerate(accepted):
        assert len([u for u in accepted[i:] if u - t < DAY_MS]) <= pb["max_per_24h"]
    assert refusals > 0 and len(accepted) > 10  # the storm did test the limits
    assert b.count("event:refused") == refusals
