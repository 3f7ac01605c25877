# Properties of the therapy core over random programs, bolus sequences and clock settings,
# each example at least 30 simulated days:
# A. the basal strokes are exactly floor(integral of the programmed rate / drug per stroke)
#    at every sampled instant, with the integral computed here independently (wall-clock
#    steps, pauses at the keep-open rate, program changes, clock set forward and back),
#    and the drug out of the catheter tip is that plus the delivered boluses, within a
#    stroke;
# B. under tight limits, no rolling 24 h window of commanded drug ever exceeds the 24 h
#    maximum, patient lockouts and caps are never broken, and every refusal is an event.
from hypothesis import given, settings
from hypothesis import strategies as st

from corekit import Bench, Reference, make_pump
from pump import wire
from pump.program import fastest_bolus_min

DAY_MS = 86400000
MIN_MS = 60000
STROKE_NL = 250
FILL_NL = 40000000


@st.composite
def programs(draw, conc, max_ng_per_day):
    names = ["a", "b", "c"][:draw(st.integers(1, 3))]
    profiles = {}
    for n in names:
        starts = sorted(draw(st.sets(st.integers(0, 1439), min_size=1, max_size=6)))
        profiles[n] = [[s, draw(st.integers(20000, max_ng_per_day))] for s in starts]
    week = [draw(st.sampled_from(names)) for _ in range(7)]
    return {"drug": "baclofen", "conc_ug_per_ml": conc, "profiles": profiles, "week": week,
            "keep_open_nl_per_day": draw(st.sampled_from([0, 6000, 20000]))}


OPS = st.sampled_from(["clock", "bolus", "cancel", "pause", "resume", "program", "none", "none"])


@st.composite
def scenarios(draw):
    conc = draw(st.sampled_from([500, 2000]))
    # keep 30+ days inside one 40 mL fill: at most 1 mL/day
    max_ng = min(800000, conc * 1000)
    first = draw(programs(conc, max_ng))
    steps = draw(st.lists(st.tuples(st.integers(1, 2 * DAY_MS), OPS, st.integers(0, 2 ** 30)),
                          min_size=5, max_size=25))
    start = draw(st.integers(0, (1 << 30) - 1))
    day0 = draw(st.integers(0, 9000))
    later = draw(programs(conc, max_ng))
    return conc, first, later, steps, start, day0


def _advance_sampling(b, ref, ms, check):
    # Move `ms` forward, hopping to every core deadline, and check after each hop once
    # the core has seen the instant (tick, then the motor's confirmations).
    p = b.pump
    end = b.elapsed_ms + ms
    while b.elapsed_ms < end:
        wait = p.tick(b.board_now)
        hop = max(1, min(wait if wait > 0 else 1, end - b.elapsed_ms))
        ref.run(hop)
        b.elapsed_ms += hop
        b.board_now = (b.board_now + hop) & ((1 << 30) - 1)
        b.tick_once()
        check()


@settings(max_examples=20)
@given(scenarios())
def test_basal_and_boluses_add_up_exactly_over_30_days(scenario):
    conc, first, later, steps, start, day0 = scenario
    b = Bench(make_pump(status_period_ms=DAY_MS), start_ticks=start)
    b.boot()
    p = b.pump
    assert p.set_limits(b.board_now, {"max_rate_ng_per_day": 10000000, "max_24h_ng": 10000000,
                                      "max_bolus_ng": 10000000}) is None
    assert p.set_clock(b.board_now, day0, 0) is None
    assert p.fill(b.board_now, FILL_NL, conc) is None
    assert p.set_program(b.board_now, first) is None
    ref = Reference(first, day0, 0)
    stroke_pg = STROKE_NL * conc

    def check():
        assert p.basal.strokes == ref.integral // (stroke_pg * 86400), (b.elapsed_ms, p.basal.strokes)

    for gap, op, x in steps:
        _advance_sampling(b, ref, gap, check)
        now = b.board_now
        if op == "clock":
            day, ms = day0 + x % 30, (x >> 8) % DAY_MS
            assert p.set_clock(now, day, ms) is None
            ref.day, ref.ms = day, ms
        elif op == "bolus":
            p.bolus_request(now, 1000 * (1 + x % 200), 1 + (x >> 8) % 120)
        elif op == "cancel":
            p.cancel_bolus(now)
        elif op == "pause":
            if p.pause(now) is None:
                ref.paused = True
        elif op == "resume":
            if p.resume(now) is None:
                ref.paused = False
        elif op == "program":
            if p.set_program(now, later) is None:
                ref.program, later = later, ref.program
        b._collect()
        check()
    if b.elapsed_ms < 30 * DAY_MS:
        _advance_sampling(b, ref, 30 * DAY_MS - b.elapsed_ms, check)
    assert p.strokes_withheld == 0 and p.strokes_unconfirmed == 0
    # the drug out of the tip: basal strokes plus what each bolus delivered (a bolus
    # still running counts its confirmed strokes so far)
    boluses_ng = sum(e["delivered_ng"] for e in b.bodies("event", "bolus_end"))
    if p.bolus is not None:
        boluses_ng += p.bolus.delivered_ng
    basal_ng = p.basal.strokes * stroke_pg // 1000
    in_flight_ng = p.in_flight * stroke_pg // 1000
    assert abs(p.patient_ng + in_flight_ng - (basal_ng + boluses_ng)) <= stroke_pg // 1000
    assert b.count("event:bolus_end") <= 100  # kept bodies cover every bolus


@st.composite
def limit_scenarios(draw):
    conc = 2000
    dose = draw(st.integers(100, 600)) * 1000
    pb_ng = draw(st.integers(5, 50)) * 1000
    # no faster than the head can give it (a faster one is refused when programmed)
    fastest = fastest_bolus_min(pb_ng, conc, make_pump().cfg.max_nl_per_day)
    pb = {"dose_ng": pb_ng, "duration_min": draw(st.integers(fastest, 30)),
          "lockout_min": draw(st.integers(10, 240)), "max_per_24h": draw(st.integers(1, 8))}
    max_24h = dose + pb["dose_ng"] * pb["max_per_24h"] + draw(st.integers(0, 100)) * 1000
    limits = {"max_rate_ng_per_day": dose, "max_24h_ng": max_24h,
              "max_bolus_ng": max(pb["dose_ng"], draw(st.integers(10, 100)) * 1000)}
    lockout_ms = pb["lockout_min"] * MIN_MS
    # gaps anywhere, and right at the edges where an off-by-one would show
    gaps = st.integers(1, 8 * 3600000) | st.sampled_from(
        [lockout_ms - 60000, lockout_ms - 1, lockout_ms, lockout_ms + 1, DAY_MS // 8])
    asks = draw(st.lists(st.tuples(gaps, st.sampled_from(["patient", "patient", "bolus"]),
                                   st.integers(1, 120000), st.integers(1, 60)), min_size=10, max_size=60))
    lower = draw(st.booleans())  # lower the 24 h limit mid-run to what the program alone needs
    return conc, dose, pb, limits, asks, lower


@settings(max_examples=20)
@given(limit_scenarios())
def test_limits_lockouts_and_caps_hold_and_every_refusal_is_logged(scenario):
    conc, dose, pb, limits, asks, lower = scenario
    b = Bench(make_pump(status_period_ms=DAY_MS))
    b.boot()
    p = b.pump
    assert p.set_limits(b.board_now, limits) is None
    assert p.fill(b.board_now, FILL_NL, conc) is None
    assert p.set_program(b.board_now, {"drug": "baclofen", "conc_ug_per_ml": conc, "dose_ug_per_day": dose // 1000,
                                       "patient_bolus": pb}) is None
    stroke_ng = STROKE_NL * conc // 1000
    commanded = []  # (elapsed ms, strokes) of every command, as the motor saw it
    refusals = 0

    def advance(ms):
        end = b.elapsed_ms + ms
        while b.elapsed_ms < end:
            wait = p.tick(b.board_now)
            b._collect()
            if b.in_motor:
                commanded.append((b.elapsed_ms, b.in_motor))
                p.rotor(b.board_now, b.in_motor)
                b.in_motor = 0
                b._collect()
                continue
            hop = max(1, min(wait if wait > 0 else 1, end - b.elapsed_ms))
            b.elapsed_ms += hop
            b.board_now = (b.board_now + hop) & ((1 << 30) - 1)

    patient_times = []
    in_force = [(0, limits["max_24h_ng"])]  # (from elapsed ms, 24 h maximum)
    for i, (gap, kind, dose_ng, minutes) in enumerate(asks):
        advance(gap)
        if lower and i == len(asks) // 2:
            # the least the running program passes with: its day plus its patient
            # boluses. What the last 24 h already hold may be more: the runtime guard
            # must then withhold strokes, not cross the limit.
            tighter = dict(limits, max_24h_ng=dose + pb["dose_ng"] * pb["max_per_24h"])
            assert p.set_limits(b.board_now, tighter) is None
            limits = tighter
            in_force.append((b.elapsed_ms, tighter["max_24h_ng"]))
        if kind == "patient":
            reason = p.patient_bolus(b.board_now)
            if reason is None:
                patient_times.append(b.elapsed_ms)
        else:
            reason = p.bolus_request(b.board_now, dose_ng, minutes)
        if reason is not None:
            refusals += 1
        b._collect()
    advance(DAY_MS)
    total_ms = b.elapsed_ms
    if total_ms < 30 * DAY_MS:
        advance(30 * DAY_MS - total_ms)
    # no 24 h window ending at a command ever held more than the 24 h maximum then in force
    mass = [(t, n * stroke_ng) for t, n in commanded]
    lo = 0
    window = 0
    for t, ng in mass:
        window += ng
        while mass[lo][0] <= t - DAY_MS:
            window -= mass[lo][1]
            lo += 1
        limit = [m for since, m in in_force if since <= t][-1]
        assert window <= limit, (t, window, limit)
    # lockout and cap
    for a, c in zip(patient_times, patient_times[1:]):
        assert c - a >= pb["lockout_min"] * MIN_MS
    for i, t in enumerate(patient_times):
        assert sum(1 for u in patient_times[i:] if u - t < DAY_MS) <= pb["max_per_24h"]
    # every refusal is an event, with its reason
    refused = b.count("event:refused")
    assert refused == refusals, (refused, refusals)
    for body in b.bodies("event", "refused"):
        assert body["reason"] and body["what"] in ("patient_bolus", "bolus", "limits")
    assert wire  # frames were decoded by the bench
