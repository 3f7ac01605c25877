# Host stand-in for MicroPython's `rp2`: an @asm_pio assembler that takes the same PIO
# source as the device (so one program serves the Pico and the tests) and a StateMachine
# that runs the assembled words cycle by cycle against the fake `machine` pins and clock.
# Runs on CPython and on the MicroPython unix port.
#
# Encodings and semantics follow the RP2040 datasheet, chapter 3 (PIO). Modelled: jmp,
# wait (gpio/pin), in, out, push, pull, mov, set, side-set (plain and optional), delays,
# wrap, autopush/autopull, exec(). Not modelled: irq (and wait on irq), fifo joins,
# pindirs; they raise instead of pretending. host_tests/test_pico_pio.py runs the same
# words on rp2040-pio-emulator to check this model against an independent one.
import machine

_MASK32 = 0xFFFFFFFF
_FIFO_DEPTH = 4
_PIO_MIN_HZ = 1908  # MicroPython: clock divider at most 65536 at the default 125 MHz


class PIOASMError(Exception):
    pass


class PIO:
    IN_LOW = 0
    IN_HIGH = 1
    OUT_LOW = 2
    OUT_HIGH = 3
    SHIFT_LEFT = 0
    SHIFT_RIGHT = 1
    JOIN_NONE = 0
    JOIN_TX = 1
    JOIN_RX = 2
    IRQ_SM0 = 0x100
    IRQ_SM1 = 0x200
    IRQ_SM2 = 0x400
    IRQ_SM3 = 0x800

    def __init__(self, id):
        if id not in (0, 1):
            raise ValueError("invalid PIO")
        self.id = id

    def state_machine(self, id, program=None, **kwargs):
        return StateMachine(self.id * 4 + id, program, **kwargs)


# ---- the assembler -------------------------------------------------------------------------
# Operand values are the datasheet's encodings; `exec` and the push/pull flags carry
# markers that each instruction translates.
_EXEC = 8
_NOBLOCK = 0x100  # marker: an explicit noblock (block is the default)
_BLOCK = 0x20
_IF = 0x40  # iffull / ifempty / clear


def _invert(v):
    return v | 0x08


def _reverse(v):
    return v | 0x10


def _rel(v):
    return v | 0x10


class _Instr:
    # One instruction while assembling: fields kept apart until the program is complete,
    # since the side-set layout is only known then.
    def __init__(self, asm, word, label):
        self.asm = asm
        self.word = word
        self.label = label
        self.delay_cycles = 0
        self.side_value = None

    def side(self, value):
        self.side_value = value
        return self

    def delay(self, cycles):
        self.delay_cycles = cycles
        return self

    def __getitem__(self, cycles):
        return self.delay(cycles)


class _Assembler:
    def __init__(self):
        self.instrs = []
        self.labels = {}
        self.wrap_target_at = 0
        self.wrap_at = -1

    def namespace(self):
        ns = {
            "gpio": 0, "pins": 0, "x": 1, "y": 2, "null": 3, "pindirs": 4, "pc": 5,
            "status": 5, "isr": 6, "osr": 7, "exec": _EXEC,
            "invert": _invert, "reverse": _reverse, "rel": _rel,
            "not_x": 1, "x_dec": 2, "not_y": 3, "y_dec": 4, "x_not_y": 5, "pin": 6,
            "not_osre": 7,
            "block": _BLOCK, "noblock": _NOBLOCK, "iffull": _IF, "ifempty": _IF,
            "clear": _IF,
        }
        for name in ("label", "wrap_target", "wrap", "word", "nop", "jmp", "wait", "in_",
                     "out", "push", "pull", "mov", "irq", "set"):
            ns[name] = getattr(self, "_" + name)
        return ns

    def _emit(self, word, label=None):
        instr = _Instr(self, word, label)
        self.instrs.append(instr)
        return instr

    def _label(self, name):
        if name in self.labels:
            raise PIOASMError("duplicate label " + name)
        self.labels[name] = len(self.instrs)

    def _wrap_target(self):
        self.wrap_target_at = len(self.instrs)

    def _wrap(self):
        if not self.instrs:
            raise PIOASMError("wrap before any instruction")
        self.wrap_at = len(self.instrs) - 1

    def _word(self, word, label=None):
        return self._emit(word & 0xFFFF, label)

    def _nop(self):
        return self._emit(0xA042)  # mov y, y

    def _jmp(self, cond, label=None):
        if label is None:
            cond, label = 0, cond
        return self._emit(cond << 5, label)

    def _wait(self, polarity, source, index):
        if source is self._irq:
            raise PIOASMError("fake rp2: wait on irq is not modelled")
        src = 1 if source == 6 else 0  # `pin` (relative to in_base) or `gpio` (absolute)
        return self._emit(0x2000 | polarity << 7 | src << 5 | index)

    def _in_(self, source, bits):
        if not 0 < bits <= 32:
            raise PIOASMError("invalid bit count")
        return self._emit(0x4000 | source << 5 | bits & 31)

    def _out(self, dest, bits):
        if not 0 < bits <= 32:
            raise PIOASMError("invalid bit count")
        if dest == _EXEC:
            dest = 7
        return self._emit(0x6000 | dest << 5 | bits & 31)

    def _fifo(self, base, flags):
        f = 0
        for flag in flags:
            f |= flag
        word = base | (f & _IF)
        if not f & _NOBLOCK:
            word |= _BLOCK
        return self._emit(word)

    def _push(self, *flags):
        return self._fifo(0x8000, flags)

    def _pull(self, *flags):
        return self._fifo(0x8080, flags)

    def _mov(self, dest, source):
        if dest == _EXEC:
            dest = 4
        return self._emit(0xA000 | dest << 5 | (source & 7) | (source >> 3 & 3) << 3)

    def _irq(self, mod, index=None):
        raise PIOASMError("fake rp2: irq is not modelled")

    def _set(self, dest, value):
        if not 0 <= value <= 31:
            raise PIOASMError("set value out of range")
        return self._emit(0xE000 | dest << 5 | value)

    def finish(self, sideset_pins, program):
        # Lays out delay / side-set bits and resolves labels (RP2040 datasheet 3.4.1).
        n_side = sum(1 for i in self.instrs if i.side_value is not None)
        opt = 0 < n_side < len(self.instrs)
        bits = sideset_pins + (1 if opt else 0)
        if n_side and not sideset_pins:
            raise PIOASMError("side() without sideset_init")
        delay_max = 31 >> bits
        words = []
        for instr in self.instrs:
            word = instr.word
            if instr.label is not None:
                if instr.label not in self.labels:
                    raise PIOASMError("unknown label " + str(instr.label))
                word |= self.labels[instr.label]
            if instr.delay_cycles > delay_max:
                raise PIOASMError("delay too large")
            word |= instr.delay_cycles << 8
            if instr.side_value is not None:
                if instr.side_value >= 1 << sideset_pins:
                    raise PIOASMError("sideset too large")
                word |= instr.side_value << (13 - bits)
                if opt:
                    word |= 1 << 12
            words.append(word)
        program.words = words
        program.sideset_count = sideset_pins
        program.sideset_opt = opt
        program.wrap_target = self.wrap_target_at
        program.wrap = self.wrap_at if self.wrap_at >= 0 else len(words) - 1
        return program


def _pin_count(init):
    if init is None:
        return 0
    if isinstance(init, int):
        return 1
    return len(init)


class Program:
    # What @asm_pio returns: the words plus the configuration the device keeps beside them.
    def __init__(self, kw):
        self.words = []
        self.sideset_count = 0
        self.sideset_opt = False
        self.wrap_target = 0
        self.wrap = 0
        self.out_count = _pin_count(kw.get("out_init"))
        self.set_count = _pin_count(kw.get("set_init"))
        self.sideset_init = kw.get("sideset_init")
        self.in_shiftdir = kw.get("in_shiftdir", PIO.SHIFT_LEFT)
        self.out_shiftdir = kw.get("out_shiftdir", PIO.SHIFT_LEFT)
        self.autopush = kw.get("autopush", False)
        self.autopull = kw.get("autopull", False)
        self.push_thresh = kw.get("push_thresh", 32)
        self.pull_thresh = kw.get("pull_thresh", 32)
        if kw.get("fifo_join", PIO.JOIN_NONE) != PIO.JOIN_NONE:
            raise PIOASMError("fake rp2: fifo_join is not modelled")


_ASM_KEYWORDS = ("out_init", "set_init", "sideset_init", "side_pindir", "in_shiftdir",
                 "out_shiftdir", "autopush", "autopull", "push_thresh", "pull_thresh",
                 "fifo_join")


def _run_with_globals(f, ns):
    # The DSL's names are globals of the decorated function, as on the device.
    try:
        import types
        import builtins
    except ImportError:
        types = None
    if types is not None and hasattr(types, "FunctionType"):
        ns["__builtins__"] = builtins
        types.FunctionType(f.__code__, ns)()
        return
    gl = f.__globals__  # MicroPython: swap the module's globals for the duration
    saved = dict(gl)
    gl.clear()
    gl.update(ns)
    try:
        f()
    finally:
        gl.clear()
        gl.update(saved)


def asm_pio(**kw):
    for key in kw:
        if key not in _ASM_KEYWORDS:
            raise TypeError("unexpected keyword argument " + key)
    if kw.get("side_pindir"):
        raise PIOASMError("fake rp2: side_pindir is not modelled")

    def assemble(f):
        asm = _Assembler()
        _run_with_globals(f, asm.namespace())
        return asm.finish(_pin_count(kw.get("sideset_init")), Program(kw))

    return assemble


def asm_pio_encode(instr, sideset_count, sideset_opt=False):
    asm = _Assembler()
    ns = asm.namespace()
    exec(instr, ns)
    if len(asm.instrs) != 1:
        raise PIOASMError("expecting exactly 1 instruction")
    i = asm.instrs[0]
    bits = sideset_count + (1 if sideset_opt else 0)
    word = i.word | i.delay_cycles << 8
    if i.side_value is not None:
        word |= i.side_value << (13 - bits) | (1 << 12 if sideset_opt else 0)
    return word


# ---- the state machine ----------------------------------------------------------------------

_machines = {}


def _reverse32(v):
    r = 0
    for _ in range(32):
        r = r << 1 | v & 1
        v >>= 1
    return r


class StateMachine:
    # One per id, like the device: StateMachine(0) twice is the same state machine.
    def __new__(cls, id, program=None, **kwargs):
        sm = _machines.get(id)
        if sm is None:
            sm = object.__new__(cls)
            sm._made = False
            _machines[id] = sm
        return sm

    def __init__(self, id, program=None, **kwargs):
        if not self._made:
            self._made = True
            self.id = id
            self.program = None
            self.running = False
        if program is not None:
            self.init(program, **kwargs)

    def init(self, program, freq=-1, *, in_base=None, out_base=None, set_base=None,
             jmp_pin=None, sideset_base=None, in_shiftdir=None, out_shiftdir=None,
             push_thresh=None, pull_thresh=None):
        if freq == -1:
            freq = machine.freq()
        if not _PIO_MIN_HZ <= freq <= machine.freq():
            raise ValueError("freq out of range")
        if program.sideset_count and sideset_base is None:
            raise ValueError("fake rp2: program side-sets but no sideset_base given")
        self.program = program
        self.freq = freq
        self.in_base = in_base.id if in_base is not None else 0
        self.out_base = out_base.id if out_base is not None else 0
        self.set_base = set_base.id if set_base is not None else 0
        self.jmp_pin = jmp_pin.id if jmp_pin is not None else 0
        self.sideset_base = sideset_base.id if sideset_base is not None else 0
        self.in_shiftdir = program.in_shiftdir if in_shiftdir is None else in_shiftdir
        self.out_shiftdir = program.out_shiftdir if out_shiftdir is None else out_shiftdir
        self.push_thresh = program.push_thresh if push_thresh is None else push_thresh
        self.pull_thresh = program.pull_thresh if pull_thresh is None else pull_thresh
        # init disables the machine, clears both FIFOs and restarts it at the program start
        self.words_put = []  # every word put() since init, oldest first (test evidence)
        self.execs = []  # every exec()'d word since init
        self.running = False
        self.tx = []
        self.rx = []
        self.pc = 0
        self.x = 0
        self.y = 0
        self.isr = 0
        self.isr_count = 0
        self.osr = 0
        self.osr_count = 32  # empty
        self.delay_left = 0
        self.cycles = 0
        self._frac = 0
        world = machine.world
        if self not in world.machines:
            world.machines.append(self)
        init = program.sideset_init
        if init is not None:
            inits = (init,) if isinstance(init, int) else init
            for i, mode in enumerate(inits):
                if mode in (PIO.OUT_LOW, PIO.OUT_HIGH):
                    world.set_level(self.sideset_base + i, mode == PIO.OUT_HIGH, True)

    def active(self, value=None):
        if value is None:
            return self.running
        self.running = bool(value)
        return self.running

    def restart(self):
        self.pc = 0
        self.isr_count = 0
        self.osr_count = 32
        self.delay_left = 0

    def put(self, value, shift=0):
        if len(self.tx) >= _FIFO_DEPTH:
            raise RuntimeError("fake rp2: put() on a full TX FIFO blocks on the device")
        word = (value << shift) & _MASK32 if shift >= 0 else (value >> -shift) & _MASK32
        self.tx.append(word)
        self.words_put.append(word)

    def get(self, buf=None, shift=0):
        if not self.rx:
            raise RuntimeError("fake rp2: get() on an empty RX FIFO blocks on the device")
        return self.rx.pop(0) >> shift

    def tx_fifo(self):
        return len(self.tx)

    def rx_fifo(self):
        return len(self.rx)

    def irq(self, handler=None, trigger=0, hard=False):
        raise NotImplementedError("fake rp2: StateMachine.irq is not modelled")

    def exec(self, instr):
        if isinstance(instr, str):
            instr = asm_pio_encode(instr, self.program.sideset_count, self.program.sideset_opt)
        self.execs.append(instr)
        if not self._execute(instr, True):
            raise RuntimeError("fake rp2: an exec()'d instruction stalled")

    # -- running ------------------------------------------------------------------------------

    def run_us(self, us):
        if not self.running:
            return
        total = us * self.freq + self._frac
        self._frac = total % 1000000
        self.run_cycles(total // 1000000)

    def run_cycles(self, n):
        prog = self.program.words
        while n > 0:
            if self.delay_left:
                d = self.delay_left if self.delay_left < n else n
                self.delay_left -= d
                self.cycles += d
                n -= d
                continue
            word = prog[self.pc]
            n -= 1
            self.cycles += 1
            if not self._execute(word, False):
                if self._stall_is_steady(word):
                    self.cycles += n  # nothing can change until the host acts
                    return

    def _stall_is_steady(self, word):
        op = word >> 13
        return op == 4 or op == 3  # a FIFO wait: only put()/get() can end it

    def _sideset(self, word):
        p = self.program
        if not p.sideset_count:
            return 5
        bits = p.sideset_count + (1 if p.sideset_opt else 0)
        field = word >> 8 & 31
        value = field >> (5 - bits)
        if p.sideset_opt:
            if not value >> p.sideset_count:
                return 5 - bits
            value &= (1 << p.sideset_count) - 1
        for i in range(p.sideset_count):
            machine.world.set_level(self.sideset_base + i, value >> i & 1, True)
        return 5 - bits

    def _write_pins(self, base, count, value):
        for i in range(count):
            machine.world.set_level((base + i) & 31, value >> i & 1, True)

    def _read_pins(self):
        pins = machine.world.pins
        v = 0
        for i in range(32):
            st = pins.get((self.in_base + i) & 31)
            if st is not None and st.level:
                v |= 1 << i
        return v

    def _next_pc(self):
        p = self.program
        return p.wrap_target if self.pc == p.wrap else self.pc + 1

    def _source(self, code):
        if code == 0:
            return self._read_pins()
        if code == 1:
            return self.x
        if code == 2:
            return self.y
        if code == 3:
            return 0
        if code == 5:  # STATUS: all ones when the TX FIFO is empty (default status_sel)
            return _MASK32 if not self.tx else 0
        if code == 6:
            return self.isr
        if code == 7:
            return self.osr
        raise PIOASMError("fake rp2: bad source %d" % code)

    def _shift_out(self, bits):
        n = 32 if bits == 0 else bits
        mask = _MASK32 if n == 32 else (1 << n) - 1
        if self.out_shiftdir == PIO.SHIFT_RIGHT:
            data = self.osr & mask
            self.osr = self.osr >> n if n < 32 else 0
        else:
            data = self.osr >> (32 - n) & mask
            self.osr = (self.osr << n) & _MASK32
        self.osr_count = min(32, self.osr_count + n)
        return data

    def _shift_in(self, data, bits):
        n = 32 if bits == 0 else bits
        mask = _MASK32 if n == 32 else (1 << n) - 1
        data &= mask
        if self.in_shiftdir == PIO.SHIFT_RIGHT:
            self.isr = (self.isr >> n | data << (32 - n)) & _MASK32 if n < 32 else data
        else:
            self.isr = (self.isr << n | data) & _MASK32 if n < 32 else data
        self.isr_count = min(32, self.isr_count + n)

    def _execute(self, word, from_exec):
        # One instruction; False when it stalls (it will be retried next cycle).
        p = self.program
        delay_bits = self._sideset(word)
        delay = (word >> 8) & ((1 << delay_bits) - 1)
        op = word >> 13
        arg1 = word >> 5 & 7
        arg2 = word & 31
        jump = -1
        if op == 0:  # JMP
            x, y = self.x, self.y
            if arg1 == 0:
                taken = True
            elif arg1 == 1:
                taken = x == 0
            elif arg1 == 2:
                taken = x != 0
                self.x = (x - 1) & _MASK32
            elif arg1 == 3:
                taken = y == 0
            elif arg1 == 4:
                taken = y != 0
                self.y = (y - 1) & _MASK32
            elif arg1 == 5:
                taken = x != y
            elif arg1 == 6:
                taken = bool(machine.world.pin(self.jmp_pin).level)
            else:
                taken = self.osr_count < self.pull_thresh
            if taken:
                jump = arg2
        elif op == 1:  # WAIT
            polarity = word >> 7 & 1
            src = word >> 5 & 3
            if src == 0:
                gpio = arg2
            elif src == 1:
                gpio = (self.in_base + arg2) & 31
            else:
                raise PIOASMError("fake rp2: wait on irq is not modelled")
            if machine.world.pin(gpio).level != polarity:
                return False
        elif op == 2:  # IN
            if p.autopush and self.isr_count >= self.push_thresh and len(self.rx) >= _FIFO_DEPTH:
                return False
            self._shift_in(self._source(arg1), arg2)
            if p.autopush and self.isr_count >= self.push_thresh:
                self.rx.append(self.isr)
                self.isr = 0
                self.isr_count = 0
        elif op == 3:  # OUT
            if p.autopull and self.osr_count >= self.pull_thresh:
                if not self.tx:
                    return False
                self.osr = self.tx.pop(0)
                self.osr_count = 0
            data = self._shift_out(arg2)
            if arg1 == 0:
                self._write_pins(self.out_base, p.out_count, data)
            elif arg1 == 1:
                self.x = data
            elif arg1 == 2:
                self.y = data
            elif arg1 == 5:
                jump = data & 31
            elif arg1 == 6:
                self.isr = data
                self.isr_count = 32 if arg2 == 0 else arg2
            elif arg1 != 3:
                raise PIOASMError("fake rp2: out to pindirs/exec is not modelled")
        elif op == 4:
            if word & 0x80:  # PULL
                if_empty = word & 0x40
                block = word & 0x20
                if if_empty and self.osr_count < self.pull_thresh:
                    pass
                elif self.tx:
                    self.osr = self.tx.pop(0)
                    self.osr_count = 0
                elif block:
                    return False
                else:
                    self.osr = self.x  # pull noblock from an empty FIFO copies X
                    self.osr_count = 0
            else:  # PUSH
                if_full = word & 0x40
                block = word & 0x20
                if if_full and self.isr_count < self.push_thresh:
                    pass
                elif len(self.rx) < _FIFO_DEPTH:
                    self.rx.append(self.isr)
                    self.isr = 0
                    self.isr_count = 0
                elif block:
                    return False
                else:
                    self.isr = 0  # push noblock into a full FIFO: the data is lost
                    self.isr_count = 0
        elif op == 5:  # MOV
            op_kind = word >> 3 & 3
            value = self._source(word & 7)
            if op_kind == 1:
                value = ~value & _MASK32
            elif op_kind == 2:
                value = _reverse32(value)
            if arg1 == 0:
                self._write_pins(self.out_base, p.out_count, value)
            elif arg1 == 1:
                self.x = value
            elif arg1 == 2:
                self.y = value
            elif arg1 == 5:
                jump = value & 31
            elif arg1 == 6:
                self.isr = value
                self.isr_count = 0
            elif arg1 == 7:
                self.osr = value
                self.osr_count = 0
            else:
                raise PIOASMError("fake rp2: mov to exec is not modelled")
        elif op == 6:
            raise PIOASMError("fake rp2: irq is not modelled")
        else:  # SET
            if arg1 == 0:
                self._write_pins(self.set_base, p.set_count, arg2)
            elif arg1 == 1:
                self.x = arg2
            elif arg1 == 2:
                self.y = arg2
            else:
                raise PIOASMError("fake rp2: set pindirs is not modelled")
        if jump >= 0:
            self.pc = jump
        elif not from_exec:
            self.pc = self._next_pc()
        self.delay_left = delay
        return True
