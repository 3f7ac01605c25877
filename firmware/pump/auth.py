# Command authentication: HMAC-SHA256 (RFC 2104 over FIPS 180-4 SHA-256) under a per-role,
# per-device key, with a monotonic counter per role and a backoff after failures.
# docs/security.md is the threat model and the policy; docs/protocol.md the exact bytes.
# The host's tools sign with the same functions (tools/keystore.py).
#
# Pure logic: keys come in as bytes from the shell (the `keys` file), time as the core's
# signed ticks. HMAC is the `hmac` module: CPython's own, and micropython-lib's on
# MicroPython (frozen into the Pico's firmware by manifest.py's require(), beside the
# modules on the unix port). MicroPython's hashes have no copy(), so each MAC hashes the
# padded key again (two blocks: not a hot path, a command at most every few hundred ms).
import binascii
import hashlib
import hmac

from pump import ticks, wire

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

CLINICIAN = "clinician"
PATIENT = "patient"
ROLES = (CLINICIAN, PATIENT)
KEY_BYTES = const(32)
CTR_MAX = const(0x3FFFFFFF)  # counters stay small ints on the RP2040
FAILURES_BEFORE_LOCKOUT = const(3)
LOCKOUT_FIRST_MS = const(1000)
LOCKOUT_MAX_MS = const(300000)

def hmac_sha256(key, msg):
    # HMAC (RFC 2104) with SHA-256
    return hmac.new(key, msg, hashlib.sha256).digest()


def message(dev, role, ctr, cmd, args):
    # the bytes a command's MAC covers: everything that makes it what it is
    return wire.dumps({"args": args, "cmd": cmd, "ctr": ctr, "dev": dev, "role": role}).encode()


def mac_hex(key, dev, role, ctr, cmd, args):
    return binascii.hexlify(hmac_sha256(key, message(dev, role, ctr, cmd, args))).decode()


def same(a, b):
    # constant-time comparison of two byte strings of equal length
    if len(a) != len(b):
        return False
    d = 0
    for i in range(len(a)):
        d |= a[i] ^ b[i]
    return d == 0


def parse_keys(data, dev):
    # The `keys` file: one frame {"t": "keys", "dev": ..., "clinician": hex, "patient": hex}.
    # Returns ({role: key bytes}, None) or ({}, reason).
    if not data:
        return {}, None
    frames = wire.Reader().feed(data)
    if len(frames) != 1 or frames[0].body.get("t") != "keys":
        return {}, "not one keys frame (damaged?)"
    body = frames[0].body
    if body.get("dev") != dev:
        return {}, "keys for device %r, this is %r" % (body.get("dev"), dev)
    keys = {}
    for role in ROLES:
        h = body.get(role)
        if h is None:
            continue
        try:
            k = binascii.unhexlify(h) if type(h) is str else b""
        except ValueError:
            k = b""
        if len(k) != KEY_BYTES:
            return {}, "%s key: expected %d hex digits" % (role, 2 * KEY_BYTES)
        keys[role] = k
    return keys, None


def keys_id(data):
    # a short name for a keys file (not secret: a hash of what it holds)
    return binascii.hexlify(hashlib.sha256(data).digest()[:8]).decode()


def keys_frame(dev, keys):
    # the `keys` file for a device (the tools write it; {role: key bytes})
    body = {"t": "keys", "dev": dev}
    for role in keys:
        body[role] = binascii.hexlify(keys[role]).decode()
    return wire.encode(0, body)


class Auth:
    # The pump's side: keys, the last counter accepted per role, the run of failures.
    def __init__(self):
        self.keys = {}
        self.ctr = {CLINICIAN: 0, PATIENT: 0}
        self.failures = 0  # in a row
        self.locked_until = None  # signed ticks (while locked)
        self.locked = False
        self.refused_locked = 0  # commands refused during the current lockout
        self.lockout_ended = 0  # a lockout just ended: how many it refused (to be logged)

    def record(self):
        # what the state file keeps: the last counter accepted per role (a replay stays
        # refused after a restart)
        return (self.ctr[CLINICIAN], self.ctr[PATIENT])

    def restore(self, record):
        self.ctr[CLINICIAN] = record[0]
        self.ctr[PATIENT] = record[1]

    def locked_ms(self, now):
        if not self.locked:
            return 0
        d = ticks.diff(self.locked_until, now)
        return d if d > 0 else 0

    def check(self, now, dev, auth, cmd, args, allowed):
        # None if the command may run (its counter is then taken), else the reason:
        # locked_out, no_key, wrong_role, bad_mac, stale_counter (docs/security.md).
        # allowed: whether auth's role may give this command.
        if self.locked:
            if ticks.diff(now, self.locked_until) < 0:
                self.refused_locked += 1
                return "locked_out"
            self.locked = False
            self.lockout_ended = self.refused_locked
            self.refused_locked = 0
        role = auth.get("role")
        if role not in ROLES or not allowed:
            return self._failed(now, "wrong_role")
        key = self.keys.get(role)
        if key is None:
            return self._failed(now, "no_key")
        ctr = auth.get("ctr")
        mac = auth.get("mac")
        if type(ctr) is not int or not 0 < ctr <= CTR_MAX or type(mac) is not str or len(mac) != 64:
            return self._failed(now, "bad_mac")
        try:
            given = binascii.unhexlify(mac)
        except ValueError:
            return self._failed(now, "bad_mac")
        try:
            signed = message(dev, role, ctr, cmd, args)
        except TypeError:
            return self._failed(now, "bad_mac")  # a float in args: no host can have signed it
        if not same(hmac_sha256(key, signed), given):
            return self._failed(now, "bad_mac")
        if ctr <= self.ctr[role]:
            return self._failed(now, "stale_counter")
        self.ctr[role] = ctr
        self.failures = 0
        return None

    def _failed(self, now, reason):
        self.failures += 1
        if self.failures >= FAILURES_BEFORE_LOCKOUT:
            n = self.failures - FAILURES_BEFORE_LOCKOUT
            ms = LOCKOUT_FIRST_MS << n if n < 9 else LOCKOUT_MAX_MS
            if ms > LOCKOUT_MAX_MS:
                ms = LOCKOUT_MAX_MS
            self.locked = True
            self.locked_until = ticks.add(now, ms)
            self.refused_locked = 0
        return reason
