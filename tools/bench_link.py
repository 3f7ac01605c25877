# `make bench`, the link: how long a status request takes over the simulated Pico's
# pseudo-terminal (the real firmware on the MicroPython unix port, the console's own
# Link), and a fuzz campaign of the link's properties (host_tests/fuzzlink.py) with its
# case count. Figures are printed, never asserted.
#   python -m tools.bench_link [--quick]
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def status_round_trip(requests=300):
    # Status requests one after another against a simulated Pico running in real time
    # (speed 1, so it sleeps in select() between strokes as a Pico idles): wall time from
    # the request's write to its result's arrival, in ms.
    from tools.link import Link
    from tools.simpico import SimPico
    with tempfile.TemporaryDirectory() as flash:
        with SimPico(speed=1, status_ms=3600000, flash=flash) as sim:
            with Link(sim.port) as link:
                link.request({"cmd": "status"}, timeout_s=30)  # the firmware is up
                times = []
                for _ in range(requests):
                    t0 = time.perf_counter()
                    reply = link.request({"cmd": "status"}, timeout_s=10)
                    times.append((time.perf_counter() - t0) * 1000.0)
                    assert reply.result["ok"]
                status = reply.last("status")
    from pump import wire
    times.sort()
    return {"n": len(times), "median_ms": statistics.median(times),
            "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))], "max_ms": times[-1],
            "status_bytes": len(wire.encode(0, status)) if status else 0}


def fuzz_campaign(cases_per_property=5000):
    # The properties of host_tests/test_link_fuzz.py (host_tests/fuzzlink.py), run for longer. Returns
    # [(property, cases run, failure or None)].
    sys.path.insert(0, os.path.join(ROOT, "host_tests"))
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    import fuzzlink as F

    out = []
    opts = settings(max_examples=cases_per_property, deadline=None, database=None,
                    suppress_health_check=list(HealthCheck))

    def run(name, fn):
        count = [0]

        def counted(x):
            count[0] += 1
            fn(x)
        return name, counted, count

    for name, fn, strategy in (
            ("reader: any bytes, however cut", F.check_reader, st.binary(max_size=4000)),
            ("dispatcher: any command bodies", F.check_any_bodies, st.lists(F.bodies(), min_size=1, max_size=4)),
            ("therapy: signed commands, any values", F.check_signed,
             st.lists(F.signed_commands(), min_size=1, max_size=3))):
        label, counted, count = run(name, fn)
        test = opts(given(strategy)(counted))
        failure = None
        try:
            test()
        except Exception as e:  # a crash or a broken property: reported, not raised
            failure = "%s: %s" % (type(e).__name__, str(e).splitlines()[0][:200] if str(e) else "")
        out.append((label, count[0], failure))
    return out


def tables(quick=False):
    rows = []
    rt = status_round_trip(60 if quick else 300)
    rows.append(("status request -> result, %d in a row" % rt["n"], "%.2f ms" % rt["median_ms"],
                 "%.2f ms" % rt["p99_ms"], "%.2f ms" % rt["max_ms"]))
    yield ("Link: status round trip over the simulated Pico's pseudo-terminal (MicroPython unix port, "
           "real-time speed; wall time on this machine)",
           ("measure", "median", "99th percentile", "max"), rows,
           ["Includes the pty relay, the firmware's loop and the status frame's encoding (%d bytes)."
            % rt["status_bytes"]])
    t0 = time.monotonic()
    fz = fuzz_campaign(500 if quick else 5000)
    total = sum(n for _, n, _ in fz)
    crashes = [f for _, _, f in fz if f]
    yield ("Link fuzzing: hypothesis cases against the frame reader and the command dispatcher (core on CPython)",
           ("property", "cases", "result"),
           [(name, "%d" % n, f or "no crash, property held") for name, n, f in fz],
           ["%d cases in %.0f s, %d crashes or broken properties (target: 0)." % (
               total, time.monotonic() - t0, len(crashes))])


if __name__ == "__main__":
    sys.path.insert(0, ROOT)
    from tools.bench import table
    for title, header, rows, notes in tables("--quick" in sys.argv):
        table(title, header, rows)
        for note in notes:
            print(note)
