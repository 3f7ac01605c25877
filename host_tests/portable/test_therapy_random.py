# The therapy properties on both runtimes: seeded random programs, boluses, pauses and
# clock settings over 30 simulated days (host_tests/test_therapy_properties.py explores
# more with hypothesis on CPython). Basal strokes equal floor(programmed integral /
# stroke) at every sample; tip drug equals basal plus delivered boluses within a stroke;
# every refusal is an event. The limits under a bolus storm: test_therapy_storm.py.
from corekit import Bench, Reference, make_pump

from boards.sim.rng import Rng

DAY_MS = 86400000
MIN_MS = 60000
STROKE_NL = 250


def _program(rng, conc):
    names = ["a", "b"][:1 + rng.below(2)]
    profiles = {}
    for n in names:
        starts = sorted(set(rng.below(1440) for _ in range(1 + rng.below(5))))
        profiles[n] = [[s, 20000 + rng.below(700000)] for s in starts]
    week = [names[rng.below(len(names))] for _ in range(7)]
    return {"drug": "baclofen", "conc_ug_per_ml": conc, "profiles": profiles, "week": week,
            "keep_open_nl_per_day": (0, 6000, 20000)[rng.below(3)]}


def _run(seed, days=30):
    rng = Rng(seed)
    conc = (500, 2000)[rng.below(2)]
    b = Bench(make_pump(status_period_ms=DAY_MS), start_ticks=rng.below(1 << 30))
    b.boot()
    p = b.pump
    assert p.set_limits(b.board_now, {"max_rate_ng_per_day": 10000000, "max_24h_ng": 10000000,
                                      "max_bolus_ng": 10000000}) is None
    day0 = rng.below(9000)
    assert p.set_clock(b.board_now, day0, 0) is None
    assert p.fill(b.board_now, 40000000, conc) is None
    program = _program(rng, conc)
    assert p.set_program(b.board_now, program) is None
    ref = Reference(program, day0, 0)
    stroke_units = STROKE_NL * conc * 86400
    refusals = 0
    while b.elapsed_ms < days * DAY_MS:
        wait = p.tick(b.board_now)
        hop = wait if rng.below(3) and wait > 0 else 1 + rng.below(3 * 3600000)
        hop = min(hop, days * DAY_MS - b.elapsed_ms)
        ref.run(hop)
        b.elapsed_ms += hop
        b.board_now = (b.board_now + hop) & ((1 << 30) - 1)
        b.tick_once()  # one core deadline (or a random instant)
        assert p.basal.strokes == ref.integral // stroke_units, (seed, b.elapsed_ms)
        if rng.below(200) == 0:
            op = rng.below(5)
            now = b.board_now
            if op == 0:
                ref.day, ref.ms = day0 + rng.below(30), rng.below(DAY_MS)
                assert p.set_clock(now, ref.day, ref.ms) is None
            elif op == 1:
                refusals += p.bolus_request(now, 1000 * (1 + rng.below(200)), 1 + rng.below(120)) is not None
            elif op == 2:
                refusals += p.cancel_bolus(now) is not None
            elif op == 3:
                reason = p.pause(now) if not ref.paused else p.resume(now)
                assert reason is None
                ref.paused = not ref.paused
            else:
                program = _program(rng, conc)
                assert p.set_program(now, program) is None
                ref.program = program
            b._collect()
    boluses_ng = sum(e["delivered_ng"] for e in b.bodies("event", "bolus_end"))
    if p.bolus is not None:
        boluses_ng += p.bolus.delivered_ng
    stroke_ng = STROKE_NL * conc // 1000
    tip_ng = p.patient_ng + p.in_flight * stroke_ng
    assert abs(tip_ng - (p.basal.strokes * stroke_ng + boluses_ng)) <= stroke_ng, seed
    assert b.count("event:refused") == refusals


def test_basal_and_boluses_add_up_exactly_seed_1():
    _run(1)


def test_basal_and_boluses_add_up_exactly_seed_2():
    _run(2)


def test_basal_and_boluses_add_up_exactly_seed_3():
    _run(3)
