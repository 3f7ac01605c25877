# A seeded generator that gives the same sequence on MicroPython and CPython
# (xorshift32; the runtimes' own `random` modules differ). Same seed, same run.


class Rng:
    def __init__(self, seed):
        self.state = (seed * 2654435761 + 1) & 0xFFFFFFFF or 1

    def next32(self):
        x = self.state
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.state = x
        return x

    def below(self, n):
        # uniform-enough integer in [0, n) for n well below 2**32
        return self.next32() % n

    def chance(self, per_million):
        return self.next32() % 1000000 < per_million
