# Helpers for tests that run both under pytest (CPython) and under mp_runner.py
# (the MicroPython unix port, which has no pytest).


def raises(exc_type, fn, *args, **kwargs):
    # Calls fn and returns the exception it raised; fails if it raised nothing.
    try:
        fn(*args, **kwargs)
    except exc_type as e:
        return e
    raise AssertionError("%s was not raised" % exc_type.__name__)


_counter = [0]


def scratch_dir(tag):
    # A fresh directory below the current one (the runners start in a scratch directory).
    import os
    _counter[0] += 1
    name = "scratch-%s-%d" % (tag, _counter[0])
    try:
        os.mkdir(name)
    except OSError:
        for entry in os.listdir(name):
            os.remove(name + "/" + entry)
    return name
