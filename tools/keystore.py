"""The host's key store: each pump's per-role keys and the last counter used per role.

One JSON file per pump, `<device id>.json`, readable by its owner only (0600), in a
directory that is too (0700): `--keys DIR`, else $PUMP_KEYS_DIR, else
~/.config/pump-console/keys. docs/security.md is the policy; this is its host side.

    {"format": 1, "dev": "sim-1",
     "keys": {"clinician": "<64 hex>", "patient": "<64 hex>"},
     "ctr": {"clinician": 12, "patient": 3}}

Every write goes to a new file in the same directory that then replaces the old one
(os.replace, after an fsync), so a crash leaves the old file or the new one, never half
of either. A read-modify-write (the next counter) holds an exclusive lock on
`<device id>.lock`, so two consoles on one store never sign with the same counter.

The counter rule: the next counter for a role is max(the store's, the pump's) + 1, where
the pump's comes from its `hello` answer, and it is saved before the command is sent. A
command that never reached the pump then only skips a number; a counter is never used
twice, even if the console dies mid-command.
"""
from __future__ import annotations

import binascii
import contextlib
import fcntl
import json
import os
import re
import stat
import sys
import tempfile
from typing import Any, Iterator

_FIRMWARE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware")
if _FIRMWARE not in sys.path:
    sys.path.append(_FIRMWARE)  # appended: firmware module names must not shadow the host's

from pump import auth  # noqa: E402

ENV_DIR = "PUMP_KEYS_DIR"
DEFAULT_DIR = os.path.join("~", ".config", "pump-console", "keys")
FORMAT = 1
ROLES = auth.ROLES  # ("clinician", "patient")
KEY_BYTES = auth.KEY_BYTES
CTR_MAX = auth.CTR_MAX
# A device id becomes a file name: an RP2040's hex id or "sim-<seed>"; nothing that
# could climb out of the store's directory.
_DEV_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


class KeyStoreError(Exception):
    """A key store problem, said so that the user knows what to do."""


class NoKey(KeyStoreError):
    """The store holds no key for this pump and role."""

    def __init__(self, store: "KeyStore", dev: str, role: str, roles: list[str]) -> None:
        self.dev = dev
        self.role = role
        if roles:
            why = "the key store %s holds only the %s key for pump %s, not the %s key" % (
                store.directory, " and ".join(roles), dev, role)
        else:
            why = "the key store %s holds no keys for pump %s" % (store.directory, dev)
        super().__init__("%s. Provision the pump (python -m tools.console provision --port PORT), "
                         "or point --keys / $%s at the store that holds its keys" % (why, ENV_DIR))


def default_dir() -> str:
    return os.path.expanduser(os.environ.get(ENV_DIR) or DEFAULT_DIR)


def check_dev(dev: Any) -> str:
    if not isinstance(dev, str) or not _DEV_RE.match(dev):
        raise KeyStoreError("device id %r: expected 1-64 letters, digits, '_', '.' or '-'" % (dev,))
    return dev


def fresh_keys(roles: Any) -> dict[str, bytes]:
    # New 256-bit keys from the operating system's random source, one per role.
    out: dict[str, bytes] = {}
    for role in roles:
        if role not in ROLES:
            raise KeyStoreError("role %r: one of %s" % (role, ", ".join(ROLES)))
        out[role] = os.urandom(KEY_BYTES)
    if not out:
        raise KeyStoreError("no role to make a key for")
    return out


def keys_file(dev: str, keys: dict[str, bytes]) -> bytes:
    # The pump's `keys` file (docs/security.md), made by the firmware's own function.
    return auth.keys_frame(check_dev(dev), {r: keys[r] for r in ROLES if r in keys})


def write_private(path: str, data: bytes) -> None:
    # Atomically (re)place `path` with `data`, readable by its owner only.
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".tmp", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


class Entry:
    # One pump's record: keys (role -> 32 bytes) and the last counter used per role.
    def __init__(self, dev: str, keys: dict[str, bytes] | None = None,
                 ctr: dict[str, int] | None = None) -> None:
        self.dev = dev
        self.keys = dict(keys or {})
        self.ctr = {role: 0 for role in ROLES}
        self.ctr.update(ctr or {})

    @property
    def roles(self) -> list[str]:
        return [r for r in ROLES if r in self.keys]

    def to_json(self) -> bytes:
        body = {"format": FORMAT, "dev": self.dev,
                "keys": {r: binascii.hexlify(k).decode() for r, k in sorted(self.keys.items())},
                "ctr": {r: self.ctr[r] for r in ROLES}}
        return (json.dumps(body, indent=1, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, data: bytes, path: str) -> "Entry":
        def bad(why: str) -> KeyStoreError:
            return KeyStoreError("%s: %s; provision the pump again to replace it" % (path, why))
        try:
            body = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise bad("not a key store file (%s)" % e) from None
        if not isinstance(body, dict) or body.get("format") != FORMAT:
            raise bad("not a key store file of format %d" % FORMAT)
        dev = body.get("dev")
        keys: dict[str, bytes] = {}
        for role, h in (body.get("keys") or {}).items():
            if role not in ROLES:
                raise bad("unknown role %r" % role)
            try:
                k = binascii.unhexlify(h)
            except (TypeError, ValueError, binascii.Error):
                k = b""
            if len(k) != KEY_BYTES:
                raise bad("the %s key is not %d hex digits" % (role, 2 * KEY_BYTES))
            keys[role] = k
        ctr: dict[str, int] = {}
        for role, n in (body.get("ctr") or {}).items():
            if role not in ROLES or type(n) is not int or not 0 <= n <= CTR_MAX:
                raise bad("counter %r=%r" % (role, n))
            ctr[role] = n
        return cls(check_dev(dev), keys, ctr)


class KeyStore:
    def __init__(self, directory: str | None = None) -> None:
        self.directory = os.path.abspath(os.path.expanduser(directory)) if directory else default_dir()

    def path(self, dev: str) -> str:
        return os.path.join(self.directory, check_dev(dev) + ".json")

    # -- reading
    def load(self, dev: str) -> Entry | None:
        path = self.path(dev)
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as e:
            raise KeyStoreError("%s: cannot be read: %s" % (path, e.strerror)) from None
        with os.fdopen(fd, "rb") as f:
            mode = os.fstat(f.fileno()).st_mode
            if mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise KeyStoreError(
                    "%s is open to other users (mode %03o): its keys may have been read. Run "
                    "`chmod 600 %s`, and provision the pump again if anyone else could have read it"
                    % (path, stat.S_IMODE(mode), path))
            data = f.read()
        return Entry.from_json(data, path)

    def devices(self) -> list[str]:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return []
        return sorted(n[:-5] for n in names if n.endswith(".json") and _DEV_RE.match(n[:-5]))

    def key(self, dev: str, role: str) -> bytes:
        entry = self.load(dev)
        if entry is None or role not in entry.keys:
            raise NoKey(self, dev, role, entry.roles if entry else [])
        return entry.keys[role]

    # -- writing
    def _ensure_dir(self) -> None:
        if not os.path.isdir(self.directory):
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
            os.chmod(self.directory, 0o700)

    @contextlib.contextmanager
    def locked(self, dev: str) -> Iterator[Entry | None]:
        # The pump's entry under an exclusive lock (None if there is none yet).
        self._ensure_dir()
        fd = os.open(os.path.join(self.directory, check_dev(dev) + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield self.load(dev)
        finally:
            os.close(fd)  # releases the lock

    def save(self, entry: Entry) -> None:
        self._ensure_dir()
        write_private(self.path(entry.dev), entry.to_json())

    def install(self, dev: str, keys: dict[str, bytes]) -> Entry:
        # These keys replace the pump's old ones (all of them: the pump's keys file is
        # replaced whole). The counters stay: the pump keeps its own, and a counter must
        # never go back.
        with self.locked(dev) as entry:
            entry = Entry(dev, keys, entry.ctr if entry else None)
            self.save(entry)
        return entry

    def provision(self, dev: str, roles: Any = ROLES) -> dict[str, bytes]:
        # Fresh keys for `roles`, recorded here; the caller puts the same keys on the pump.
        keys = fresh_keys(roles)
        self.install(dev, keys)
        return keys

    def next_counter(self, dev: str, role: str, pump_ctr: int = 0) -> int:
        # max(the store's, the pump's) + 1, saved before it is used.
        with self.locked(dev) as entry:
            if entry is None or role not in entry.keys:
                raise NoKey(self, dev, role, entry.roles if entry else [])
            n = max(entry.ctr.get(role, 0), pump_ctr if type(pump_ctr) is int else 0) + 1
            if n > CTR_MAX:
                raise KeyStoreError("the %s counter of pump %s is used up (%d); provision the pump again"
                                    % (role, dev, CTR_MAX))
            entry.ctr[role] = n
            self.save(entry)
        return n

    def sign(self, dev: str, role: str, cmd: str, args: dict[str, Any], pump_ctr: int = 0) -> dict[str, Any]:
        # The `auth` object of a command (docs/protocol.md), its counter already saved.
        key = self.key(dev, role)
        ctr = self.next_counter(dev, role, pump_ctr)
        return {"role": role, "ctr": ctr, "mac": auth.mac_hex(key, dev, role, ctr, cmd, args)}

    def export(self, dev: str, roles: Any, directory: str) -> str:
        # A store for another console holding only `roles` (a patient's console gets the
        # patient key alone). Returns the file written.
        entry = self.load(dev)
        if entry is None:
            raise KeyStoreError("the key store %s holds no keys for pump %s" % (self.directory, dev))
        missing = [r for r in roles if r not in entry.keys]
        if missing:
            raise NoKey(self, dev, missing[0], entry.roles)
        other = KeyStore(directory)
        other.install(dev, {r: entry.keys[r] for r in roles})
        with other.locked(dev) as copied:
            assert copied is not None
            for r in roles:
                copied.ctr[r] = max(copied.ctr[r], entry.ctr[r])
            other.save(copied)
        return other.path(dev)
