# A pump on the simulated board with its link in memory: the host's side of the
# protocol (framing, signing) for tests that talk to the real shell and core, on both
# runtimes. docs/protocol.md is what it speaks.
import app
from boards.sim import Board
from pump import auth, wire
from pump.core import Pump

DAY_MS = 86400000
PROGRAM = {"drug": "baclofen", "conc_ug_per_ml": 500, "dose_ug_per_day": 200}


class MemoryLink:
    # HAL link: bytes the host queued come in; what the pump writes is kept
    def __init__(self):
        self.inbox = b""
        self.sent = []

    def read(self):
        x = self.inbox
        self.inbox = b""
        return x

    def write(self, data):
        self.sent.append(data)

    def wait(self, ms):
        return len(self.inbox) > 0


def made_up_keys(seed=7):
    # fixed, made-up keys for tests only (real ones come from os.urandom: docs/security.md)
    return {auth.CLINICIAN: bytes((seed + i) & 0xFF for i in range(32)),
            auth.PATIENT: bytes((seed * 3 + 5 * i) & 0xFF for i in range(32))}


class Host:
    def __init__(self, flash_dir, keys=None, with_keys=True, program=PROGRAM, board=None):
        self.link = MemoryLink()
        self.board = board or Board(flash_dir, self.link)
        self.keys = keys or made_up_keys()
        if with_keys:
            self.board.storage.write("keys", auth.keys_frame(self.board.device_id, self.keys))
        self.seq = 100
        self.ctr = {auth.CLINICIAN: 0, auth.PATIENT: 0}
        self.reader = wire.Reader()
        self.boot(program)

    def boot(self, program=None):
        b = self.board
        self.app = app.App(b, Pump(app.pump_config(b.config, DAY_MS)))
        if b.head.reservoir_nl == 0:
            b.head.reservoir_nl = 20000000
        self.app.start()
        if program is not None:
            assert app.provision(self.app, program, 20000000) is None
        self.take()

    @property
    def pump(self):
        return self.app.pump

    def run(self, ms):
        # the shell's loop for `ms` of board time
        b = self.board
        end = b.clock.ms + ms
        while b.clock.ms < end:
            w = self.app.step()
            b.wait(w if w < end - b.clock.ms else end - b.clock.ms)
        self.app.step()

    def take(self):
        # bodies the pump sent since the last take
        data = b"".join(self.link.sent)
        self.link.sent = []
        return [f.body for f in self.reader.feed(data)]

    def frame(self, cmd, args=None, role=None, ctr=None, key=None, seq=None):
        # the bytes of a command frame; signed when a role is given
        body = {"cmd": cmd}
        if args is not None:
            body["args"] = args
        if role is not None:
            if ctr is None:
                self.ctr[role] += 1
                ctr = self.ctr[role]
            k = key if key is not None else self.keys[role]
            body["auth"] = {"role": role, "ctr": ctr,
                            "mac": auth.mac_hex(k, self.board.device_id, role, ctr, cmd, args or {})}
        if seq is None:
            self.seq = (self.seq + 1) % wire.SEQ_MODULO
            seq = self.seq
        return wire.encode(seq, body)

    def send_raw(self, data, ms=2000):
        # bytes onto the link, then the pump's loop for `ms`; returns what it sent back
        self.link.inbox += data
        self.run(ms)
        return self.take()

    def send(self, cmd, args=None, role=None, ctr=None, key=None, seq=None, ms=2000):
        return self.send_raw(self.frame(cmd, args, role, ctr, key, seq), ms)


def result(bodies):
    # the one result among bodies (fails if there is not exactly one)
    rs = [b for b in bodies if b.get("t") == "result"]
    assert len(rs) == 1, rs
    return rs[0]


def events(bodies, ev):
    return [b for b in bodies if b.get("t") == "event" and b.get("ev") == ev]
