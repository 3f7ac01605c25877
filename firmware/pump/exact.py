# Exact (a*b + c) divmod d in small integers, for quantities whose product would not fit.
#
# On the RP2040 an int outside +-2**30 lives on the heap. Stroke timing needs products
# such as stroke mass x 86400 x rate that reach 2**40, so they are never formed: this
# long division walks a's bits and keeps every intermediate below 2**29.
# Preconditions: 0 <= a < 2**29, 0 <= b < 2**28, 0 < d < 2**28, |c| < 2**28,
# and the quotient fits in 2**29.


def muldivmod(a, b, c, d):
    q = 0
    r = 0
    bit = 1
    while bit <= (a >> 1):
        bit <<= 1
    while a and bit:
        q += q
        r += r
        if r >= d:
            r -= d
            q += 1
        if a & bit:
            r += b
            if r >= d:
                k = r // d
                q += k
                r -= k * d
        bit >>= 1
    r += c
    k = r // d
    return q + k, r - k * d
