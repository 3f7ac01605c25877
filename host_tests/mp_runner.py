# Runs the portable tests on the MicroPython unix port, which has no pytest:
#   micropython -X heapsize=224k host_tests/mp_runner.py test_strokes [test_core ...]
# Prints one line per test and a closing "N passed, N failed"; exits 1 on any failure.
import gc
import sys

_HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
_ROOT = _HERE.rsplit("/", 1)[0] if "/" in _HERE else ".."
for _p in (_HERE + "/portable", _ROOT, _ROOT + "/firmware"):
    sys.path.insert(0, _p)


def run(module_names):
    passed = 0
    failed = 0
    for name in module_names:
        if name.startswith("test_pico") and _HERE + "/fakes" not in sys.path:
            # the Pico board's tests run against fake `machine` and `rp2` modules, which
            # must come before the unix port's built-in `machine`
            sys.path.insert(0, _HERE + "/fakes")
        module = __import__(name)
        for attr in sorted(dir(module)):
            if not attr.startswith("test_"):
                continue
            fn = getattr(module, attr)
            gc.collect()
            try:
                fn()
            except Exception as e:  # report every failure, keep going
                failed += 1
                print("FAIL %s.%s" % (name, attr))
                sys.print_exception(e)
            else:
                passed += 1
                print("ok   %s.%s" % (name, attr))
    print("%d passed, %d failed" % (passed, failed))
    return failed


if __name__ == "__main__":
    sys.exit(1 if run(sys.argv[1:]) else 0)
