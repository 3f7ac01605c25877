# Commands from the link: sequence check, lookup, argument check, authentication, then
# the therapy operation; every command frame gets exactly one `result`. docs/protocol.md
# is the schema, docs/security.md the authentication policy.
#
# Nothing a frame carries reaches therapy code before its arguments have been checked
# for name, type and presence here, and its MAC and counter in pump.auth. A rejected
# frame changes nothing but a counter (and the log, for authentication failures).
from pump import auth as AU
from pump import ticks, wire

try:
    from micropython import const
except ImportError:
    def const(x):
        return x

FIRMWARE = "0.5"
WANT_LOG = const(4)  # pump.engine.WANT_LOG
# A log export reads the log a piece at a time: LOG_PIECE bytes, or more (doubling up to
# a whole frame, wire.MAX_FRAME) while a piece holds no record's end. Small pieces keep
# the Pico's heap from fragmenting.
LOG_PIECE = const(1024)
LOG_OLD = "log.1"
LOG_NEW = "log"
BAD_FRAME_EVERY_MS = const(1000)  # at most one bad_frame result a second
_HALF_SEQ = const(32768)

C = 1  # who may give a command: bit per role (0: anyone, no authentication)
P = 2
_ROLE_BITS = {AU.CLINICIAN: C, AU.PATIENT: P}

# cmd: (roles, the Pump method it runs, its arguments). Arguments are "name:kind", kind
# i (a whole number), b (true or false) or s (a string), with "?" after an optional one;
# they are passed by name. "*" first: the checked args object is passed whole. The
# read-only commands are answered here (their method is ""). Strings, not nested
# tables: this module's RAM counts on the Pico.
TABLE = {
    "hello": (0, "", ""),
    "status": (0, "", ""),
    "settings": (0, "", ""),
    "log": (0, "", ""),
    "program": (C, "set_program", "*"),
    "limits": (C, "set_limits", "* max_rate_ng_per_day:i max_24h_ng:i max_bolus_ng:i"),
    "clock": (C, "set_clock", "day:i ms:i"),
    "fill": (C, "fill", "volume_nl:i conc_ug_per_ml:i bridge:b?"),
    "refill": (C, "refill", "withdrawn_nl:i volume_nl:i conc_ug_per_ml:i conc_again:i bridge:b?"),
    "bolus": (C, "bolus_request", "dose_ng:i duration_min:i"),
    "prime": (C, "prime", "part:s?"),
    "cancel_bolus": (C, "cancel_bolus", ""),
    "titrate": (C, "titrate", "percent:i? daily_ng:i? in_min:i?"),
    "pause": (C, "pause", ""),
    "resume": (C, "resume", ""),
    "alarm_settings": (C, "set_alarm_settings", "* low_reservoir_nl:i low_days:i empty_floor_nl:i"),
    "ack": (C | P, "ack", ""),
    "silence": (C | P, "silence", "minutes:i"),
    "patient_bolus": (P, "patient_bolus", ""),
}
_KINDS = {"i": (int, "a whole number"), "b": (bool, "true or false"), "s": (str, "a string")}


def received(p, now, data):
    p._advance(now)
    r = p.reader
    before = r.bad_crc + r.bad_format + r.oversize
    for frame in r.feed(data):
        _command_frame(p, now, frame)
    if r.bad_crc + r.bad_format + r.oversize != before:
        _bad_frames(p)
    p._plan()


def _bad_frames(p):
    if p.bad_frame_at is not None and ticks.diff(p.now, p.bad_frame_at) < BAD_FRAME_EVERY_MS:
        return
    p.bad_frame_at = p.now
    r = p.reader
    p._send({"t": "result", "cmd": None, "re": None, "ok": False, "code": "bad_frame",
                "bad_crc": r.bad_crc, "bad_format": r.bad_format, "oversize": r.oversize})


def _result(p, cmd, seq, code, fields=None):
    body = fields if fields is not None else {}
    body["t"] = "result"
    body["cmd"] = cmd
    body["re"] = seq
    body["ok"] = code == "ok"
    body["code"] = code
    p._send(body)


def _command_frame(p, now, frame):
    st = p.link_stats
    st.frames += 1
    body = frame.body
    cmd = body.get("cmd")
    seq = frame.seq
    if type(cmd) is not str:
        cmd = None
    # the host's sequence: never act on a frame twice, nor on one from the past
    if cmd == "hello" or p.host_seq is None:
        p.host_seq = seq
    else:
        d = (seq - p.host_seq) % wire.SEQ_MODULO
        if d == 0 or d >= _HALF_SEQ:
            st.out_of_order += 1
            return _result(p, cmd, seq, "out_of_order", {"expected_after": p.host_seq})
        if d > 1:
            st.seq_gaps += 1
        p.host_seq = seq
    entry = TABLE.get(cmd) if cmd is not None else None
    if entry is None:
        st.unknown_command += 1
        return _result(p, cmd, seq, "unknown_command")
    roles, method, spec = entry
    args = body.get("args", {})
    bad = _bad_args(args, spec)
    if bad is not None:
        st.bad_request += 1
        return _result(p, cmd, seq, "bad_request", {"reason": bad[1], "field": bad[0]})
    if not roles:
        return _READ_ONLY[cmd](p, seq)
    a = body.get("auth")
    if a is None:
        st.auth_failed += 1
        return _result(p, cmd, seq, "auth_required")
    if not _authenticated(p, cmd, args, roles, a, seq):
        return None
    p._persist()  # the counter is written before anything the command does
    p.last_refusal = None
    if cmd == "fill" and p.reservoir.conc_ug_per_ml:
        # over the link, `fill` is the first fill of an empty pump: a pump that holds (or
        # held) drug is refilled with the residual check (refill)
        return _result(p, cmd, seq, "refused", {
            "reason": "the reservoir holds drug of %d ug/mL: use refill (the residual withdrawn is checked)"
                      % p.reservoir.conc_ug_per_ml, "field": "volume_nl"})
    try:
        if spec[:1] == "*":
            reason = getattr(p, method)(now, args)
        else:
            reason = getattr(p, method)(now, **args)
    except Exception as e:
        # arguments of the right types that therapy code still could not use, or a
        # defect in it: an answer and a log entry, never a crash of the pump
        st.bad_request += 1
        why = repr(e)[:200]
        p._event("command_error", {"cmd": cmd, "error": why})
        return _result(p, cmd, seq, "bad_request", {"reason": "could not be carried out: " + why})
    if reason is None:
        return _result(p, cmd, seq, "ok")
    f = p.last_refusal
    fields = {"reason": reason}
    if f is not None:
        for k in ("field", "limit", "retry_in_ms"):
            if k in f:
                fields[k] = f[k]
    return _result(p, cmd, seq, "refused", fields)


def _bad_args(args, spec):
    # (field, reason) if the arguments do not fit the command's spec, else None
    if type(args) is not dict:
        return "args", "args must be an object"
    if spec == "*":
        return None  # checked whole by the therapy operation (a program)
    names = []
    for item in spec.split():
        if item == "*":
            continue
        name, kind = item.split(":")
        names.append(name)
        if name not in args:
            if kind[-1:] != "?":
                return name, "missing argument %r" % name
            continue
        t, what = _KINDS[kind[0]]
        if type(args[name]) is not t:
            return name, "%s=%r: expected %s" % (name, args[name], what)
    for name in args:
        if name not in names:
            return name, "unknown argument %r (this command takes: %s)" % (name, ", ".join(names) or "none")
    return None


def _authenticated(p, cmd, args, roles, a, seq):
    au = p.auth
    if type(a) is not dict:
        a = {}
    role = a.get("role")
    why = au.check(p.now, p.dev, a, cmd, args, _ROLE_BITS.get(role, 0) & roles if type(role) is str else 0)
    if au.lockout_ended:
        p._event("auth_lockout_end", {"refused": au.lockout_ended})
        au.lockout_ended = 0
    if why is None:
        return True
    p.link_stats.auth_failed += 1
    fields = {"reason": why}
    if why == "locked_out":
        fields["retry_in_ms"] = au.locked_ms(p.now)
    else:
        ctr = a.get("ctr")
        p._event("auth_failed", {"cmd": cmd, "reason": why,
                                 "role": role if type(role) is str else None,
                                 "ctr": ctr if type(ctr) is int else None})
        if au.locked:
            p._event("auth_lockout", {"failures": au.failures, "locked_ms": au.locked_ms(p.now)})
            fields["retry_in_ms"] = au.locked_ms(p.now)
    _result(p, cmd, seq, "auth_failed", fields)
    p._plan()
    return False


# ---- read-only ------------------------------------------------------------------

def _cmd_hello(p, seq):
    au = p.auth
    _result(p, "hello", seq, "ok", {
        "dev": p.dev, "version": wire.VERSION, "firmware": FIRMWARE, "max_frame": wire.MAX_FRAME,
        "roles": [r for r in AU.ROLES if r in au.keys],
        "ctr": {AU.CLINICIAN: au.ctr[AU.CLINICIAN], AU.PATIENT: au.ctr[AU.PATIENT]}})


def _cmd_status(p, seq):
    p._send(p.status())
    _result(p, "status", seq, "ok")


def _cmd_settings(p, seq):
    c = p.clock
    _result(p, "settings", seq, "ok", {
        "program": p.program.to_dict() if p.program else None,
        "limits": p.limits.to_dict(),
        "alarm_settings": {"low_reservoir_nl": p.low_nl, "low_days": p.low_days,
                           "empty_floor_nl": p.floor_nl},
        "clock": [c.day, c.ms] if c.valid else None,
        "conc_ug_per_ml": p.reservoir.conc_ug_per_ml})


def _cmd_log(p, seq):
    if p.log_re is not None:
        _result(p, "log", seq, "busy", {"reason": "a log export is running"})
        return None
    p.log_re = seq
    p.log_file = None  # first the shell tells the sizes (log_begin)
    p.log_offset = 0
    p.log_records = 0
    p.log_corrupt = 0
    p.wants |= WANT_LOG
    p._plan_aux()
    return None


# ---- the log export, driven by the shell ----------------------------------------

def log_begin(p, now, old_size, new_size):
    # the sizes of the two log files (-1: absent)
    p._advance(now)
    total = (old_size if old_size > 0 else 0) + (new_size if new_size > 0 else 0)
    p._send({"t": "log_start", "re": p.log_re, "bytes": total})
    p.log_file = LOG_OLD if old_size > 0 else LOG_NEW
    p.log_offset = 0
    p.log_want = LOG_PIECE
    p._plan_aux()
    p._plan()


def log_chunk(p, now, data):
    # up to p.log_want bytes of p.log_file from p.log_offset (b"" or None: its end)
    p._advance(now)
    if not data:
        if p.log_file == LOG_OLD:
            p.log_file = LOG_NEW
            p.log_offset = 0
        else:
            _log_end(p)
        p._plan()
        return
    k = data.rfind(b"\n")
    if k < 0:
        if len(data) == p.log_want and p.log_want < wire.MAX_FRAME:
            p.log_want *= 2  # a long record: read more of it next pass
        else:
            # no record end in a whole frame's worth, or a torn last record: skip it
            p.log_corrupt += 1
            p.log_offset += len(data)
        p._plan()
        return
    p.log_want = LOG_PIECE
    r = wire.Reader()
    for frame in r.feed(memoryview(data)[:k + 1]):
        body = frame.body
        if body.get("t") == "event":
            body["t"] = "log"
            p._send(body)
            p.log_records += 1
    p.log_corrupt += r.bad_crc + r.bad_format + r.oversize
    p.log_offset += k + 1
    p._plan()


def _log_end(p):
    _result(p, "log", p.log_re, "ok", {"records": p.log_records, "corrupt": p.log_corrupt})
    p.log_re = None
    p.log_file = None
    p.wants &= ~WANT_LOG
    p._plan_aux()


_READ_ONLY = {"hello": _cmd_hello, "status": _cmd_status, "settings": _cmd_settings, "log": _cmd_log}
