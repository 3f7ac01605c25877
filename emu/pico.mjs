// The emulated Pico: the firmware image (build/firmware/RPI_PICO/firmware.uf2) running on
// an emulated RP2040 (rp2040js), wired as the bench prototype is (world.mjs), its flash a
// file that outlives the process (flash.mjs), its USB serial on this process's stdin and
// stdout (a pseudo-terminal when started by tools/emupico.py, as /dev/ttyACM0 would be).
//
//   node emu/pico.mjs --flash FILE [--uf2 FILE] [--control SOCKET] [--speed X] ...
//
// --uf2 writes the image into the flash first, as dragging it onto the BOOTSEL drive
// does; the filesystem region is left as it was. --control listens on a Unix socket for
// one JSON object per line (the test and benchmark hooks; see `ops` below). Emulated time
// is the chip's own: 125 MHz cycles while it runs, and while it waits (WFI/WFE) the clock
// jumps to the next timer or peripheral event, so a waiting pump runs far faster than
// real time. --speed X caps it at X emulated seconds per wall second (0: no cap).
// A power cut (`cut`, --cut-at-cycle) ends the process at a busy cycle: the flash file
// holds what was written up to that cycle, a flash operation in progress half done.
import crypto from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeBlock } from 'uf2';
import { Chip } from './chip.mjs';
import { CdcHost } from './usbcdc.mjs';
import { FAULT_KINDS, World } from './world.mjs';
import { FlashFile, patchBootrom } from './flash.mjs';

console.log = (...args) => process.stderr.write(args.join(' ') + '\n'); // stdout is the USB serial

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.dirname(HERE);
const CYCLE_NS = 8;
const BATCH = 20000; // instructions between looks at the wall clock and the event loop
const SLICE_WALL_MS = 25; // then the event loop runs (serial bytes, control requests)

function usage(message) {
  process.stderr.write(`emu: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const o = {
    flash: null, uf2: null, control: null, speed: 0, bootrom: null, uid: null, seed: 1,
    untilMs: 0, cutAtCycle: -1, service: false, driver: 'stepdir', strokeNl: 250,
    stepsPerStroke: 0, stats: false, usbStock: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const v = () => { if (i + 1 >= argv.length) usage(`${a} needs a value`); return argv[++i]; };
    if (a === '--flash') o.flash = v();
    else if (a === '--uf2') o.uf2 = v();
    else if (a === '--control') o.control = v();
    else if (a === '--speed') o.speed = Number(v());
    else if (a === '--bootrom') o.bootrom = v();
    else if (a === '--uid') o.uid = v();
    else if (a === '--seed') o.seed = Number(v());
    else if (a === '--until-ms') o.untilMs = Number(v());
    else if (a === '--cut-at-cycle') o.cutAtCycle = Number(v());
    else if (a === '--service') o.service = true;
    else if (a === '--driver') o.driver = v();
    else if (a === '--stroke-nl') o.strokeNl = Number(v());
    else if (a === '--stats') o.stats = true;
    else if (a === '--usb-stock') o.usbStock = true; // rp2040js's USB host as it comes (no idle skipping)
    else usage(`unknown option ${a}`);
  }
  if (!o.flash) usage('--flash FILE is required (the flash image, created blank if absent)');
  if (!['stepdir', 'uln2003'].includes(o.driver)) usage('--driver is stepdir or uln2003');
  if (!(o.speed >= 0)) usage('--speed is a number >= 0');
  if (o.uid !== null && !/^[0-9a-f]{16}$/i.test(o.uid)) usage('--uid is 16 hex digits');
  o.stepsPerStroke = o.driver === 'uln2003' ? 512 : 64; // boards/pico/config.py
  return o;
}

function vendorFile(name) {
  const dir = process.env.PUMP_VENDOR || path.join(ROOT, '..', 'shared', 'vendor');
  return path.join(dir, name);
}

function loadBootrom(file) {
  if (!fs.existsSync(file)) usage(`${file} is missing: the RP2040 bootrom comes with the pinned sources (see docs/pico.md)`);
  const data = fs.readFileSync(file);
  const sums = path.join(path.dirname(file), 'SHA256SUMS');
  if (fs.existsSync(sums)) {
    const want = fs.readFileSync(sums, 'utf8').split('\n').map((l) => l.trim().split(/\s+/))
      .find((p) => p[1] && p[1].replace(/^\*/, '') === path.basename(file));
    const got = crypto.createHash('sha256').update(data).digest('hex');
    if (want && want[0] !== got) usage(`${file} does not match its checksum in SHA256SUMS`);
  }
  if (data.length !== 16384) usage(`${file}: a RP2040 bootrom is 16384 bytes, not ${data.length}`);
  return new Uint32Array(data.buffer, data.byteOffset, data.length / 4);
}

function loadUF2(file) {
  if (!fs.existsSync(file)) usage(`${file} is missing: build it with \`make firmware\``);
  const data = fs.readFileSync(file);
  if (!data.length || data.length % 512) usage(`${file} is not a UF2 image`);
  const blocks = [];
  for (let off = 0; off < data.length; off += 512) {
    try {
      blocks.push(decodeBlock(new Uint8Array(data.buffer, data.byteOffset + off, 512)));
    } catch (e) {
      usage(`${file}: block ${off / 512}: ${e.message}`);
    }
  }
  return blocks;
}

function uidFor(flashPath, given) {
  // The flash chip's unique id: given, or kept beside the flash image (a new random one
  // for a new image), so one emulated Pico keeps its id across runs.
  const file = flashPath + '.uid';
  if (given) { fs.writeFileSync(file, given.toLowerCase() + '\n'); return given.toLowerCase(); }
  if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8').trim();
  const id = crypto.randomBytes(8).toString('hex');
  fs.writeFileSync(file, id + '\n');
  return id;
}

class EmulatedPico {
  constructor(o) {
    this.o = o;
    this.rom = patchBootrom(loadBootrom(o.bootrom || vendorFile('rp2040-bootrom-b1.bin')));
    this.flash = new FlashFile(o.flash);
    if (o.uf2) this.imageEnd = this.flash.writeUF2Blocks(loadUF2(o.uf2));
    this.uidHex = uidFor(o.flash, o.uid);
    this.uid = Uint8Array.from(Buffer.from(this.uidHex, 'hex'));
    this.world = new World({ stepsPerStroke: o.stepsPerStroke, strokeNl: o.strokeNl, seed: o.seed });
    this.world.serviceHeld = o.service;
    this.busyCycles = 0; // cycles the core ran (flash operations included): the power-cut clock
    this.idleNs = 0; // emulated time skipped while the core waited
    this.wakeups = 0; // times an interrupt ended such a wait
    this.baseNs = 0; // emulated ns before this power-up
    this.cutAtCycle = o.cutAtCycle;
    this.boots = [];
    this.wallStart = performance.now();
    this.running = false;
    this.scheduled = false;
    this.stopped = false;
    this.serialOut = [];
    this.flashTrace = null;
    this.powerUp(null, 'power-on');
  }

  powerUp(carry, why) {
    if (this.chip) this.baseNs += this.chip.clock.nanos;
    this.chip = new Chip(this.rom, this.flash, this.uid, carry);
    this.world.attach(this.chip, this.baseNs);
    this.world.hookAdc();
    this.usb = new CdcHost(this.chip.mcu.usbCtrl, (buffer) => this.serial(buffer), this.o.usbStock);
    if (this.pendingHost) for (const b of this.pendingHost) this.usb.send(b);
    this.boots.push({ ns: this.baseNs, cycle: this.busyCycles, why });
    this.firstSerialNs = null; // ns after this power-up of the first byte on the USB serial
  }

  nowNs() {
    return this.baseNs + this.chip.clock.nanos;
  }

  serial(buffer) {
    if (this.firstSerialNs === null) this.firstSerialNs = this.chip.clock.nanos;
    process.stdout.write(Buffer.from(buffer));
  }

  fromHost(bytes) {
    this.usb.send(new Uint8Array(bytes));
    this.kick();
  }

  kick() {
    if (!this.scheduled && !this.stopped) {
      this.scheduled = true;
      setImmediate(() => { this.scheduled = false; this.slice(); });
    }
  }

  // The run loop: instructions, or a jump to the next event while the core waits.
  slice() {
    if (this.stopped) return;
    const o = this.o;
    const t0 = performance.now();
    const untilNs = o.untilMs ? o.untilMs * 1e6 : Infinity;
    let allowNs = Infinity;
    if (o.speed > 0) allowNs = this.speedOriginNs + o.speed * (t0 - this.speedOriginWall) * 1e6;
    for (;;) {
      const chip = this.chip;
      const core = chip.mcu.core;
      const clock = chip.clock;
      for (let n = 0; n < BATCH; n++) {
        if (core.waiting) {
          if (!clock.nextAlarm) return; // nothing will happen until the host sends something
          const dt = Math.max(0, clock.nanosToNextAlarm); // 0: an event due right now
          const at = this.baseNs + clock.nanos + dt;
          if (at > allowNs || at > untilNs) {
            // not yet: wait for the wall clock (--speed), or stop at --until-ms
            if (at > untilNs) { clock.tick(untilNs - this.baseNs - clock.nanos); return this.finish('until'); }
            return this.later(at - allowNs);
          }
          clock.tick(dt);
          this.idleNs += dt;
          if (!core.waiting) this.wakeups++;
        } else {
          const cycles = core.executeInstruction();
          this.busyCycles += cycles;
          clock.tick(cycles * CYCLE_NS);
          if (chip.breakCode >= 0) this.flashOperation(chip);
          if (this.busyCycles >= this.cutAtCycle && this.cutAtCycle >= 0) return this.cut();
        }
        if (chip.resetRequested) {
          this.powerUp(chip.resetRequested, 'watchdog');
          break;
        }
      }
      if (this.stopped) return;
      const now = this.nowNs();
      if (now >= untilNs) return this.finish('until');
      if (now >= allowNs) return this.later(0);
      if (performance.now() - t0 > SLICE_WALL_MS) break;
    }
    this.kick();
  }

  later(aheadNs) {
    // --speed: sleep until the wall clock catches up with the emulated one
    const ms = Math.max(1, Math.min(100, aheadNs / 1e6 / this.o.speed));
    setTimeout(() => this.kick(), ms);
  }

  flashOperation(chip) {
    const code = chip.breakCode;
    chip.breakCode = -1;
    const core = chip.mcu.core;
    const steps = this.flash.plan(chip.mcu, code);
    if (steps === null) {
      process.stderr.write(`emu: breakpoint ${code} at ${core.PC.toString(16)}\n`);
      return;
    }
    for (const step of steps) {
      const cycles = Math.round(step.ns / CYCLE_NS);
      const start = this.busyCycles;
      if (this.cutAtCycle >= 0 && start + cycles > this.cutAtCycle) {
        const fraction = Math.max(0, (this.cutAtCycle - start) / cycles);
        step.apply(fraction);
        this.cutInOp = { op: step.op, offset: step.offset, bytes: step.bytes, done: fraction };
        this.busyCycles = this.cutAtCycle;
        this.traceFlash(step, start, fraction);
        return; // the slice loop sees the cut at once
      }
      step.apply(1);
      this.busyCycles += cycles;
      chip.clock.tick(step.ns);
      this.traceFlash(step, start, 1);
    }
    core.PC = core.LR & ~1; // return to the caller, as the ROM function would
    const lo = steps[0].offset;
    const last = steps[steps.length - 1];
    chip.mcu.flash.set(this.flash.image.subarray(lo, last.offset + last.bytes), lo); // XIP sees it
  }

  traceFlash(step, start, fraction) {
    if (this.flashTrace && this.flashTrace.length < 100000) {
      this.flashTrace.push({ op: step.op, offset: step.offset, bytes: step.bytes, cycle: start, done: fraction });
    }
  }

  cut() {
    this.stopped = true;
    this.flash.close();
    // what the head did up to the cut, for whoever checks the pump's books afterwards
    const report = {
      busy_cycle: this.busyCycles, emulated_s: this.nowNs() / 1e9, world: this.world.report(),
      flash_op: this.cutInOp || null, // the erase or program the cut fell into, if any
    };
    process.stderr.write(`emu: power cut ${JSON.stringify(report)}\n`);
    this.exit(0);
  }

  finish(why) {
    this.stopped = true;
    if (this.o.stats) process.stderr.write(`emu: ${why}: ${JSON.stringify(this.stats())}\n`);
    this.exit(0);
  }

  exit(code) {
    // let the last serial bytes and control answers leave first
    process.stdout.write('', () => setTimeout(() => process.exit(code), 20));
  }

  stats() {
    const wall = (performance.now() - this.wallStart) / 1000;
    const emu = this.nowNs() / 1e9;
    return {
      emulated_s: emu, wall_s: wall, speed: emu / wall, busy_cycles: this.busyCycles,
      idle_s: this.idleNs / 1e9, wakeups: this.wakeups, first_serial_ns: this.firstSerialNs, boots: this.boots, uid: this.uidHex,
      flash: { erases: this.flash.erases, pages: this.flash.pages },
    };
  }

  // ---- the control socket ------------------------------------------------------------------
  op(req) {
    const w = this.world;
    switch (req.op) {
      case 'status':
        return {
          ...this.stats(), world: w.report(), cut_at_cycle: this.cutAtCycle,
          usb: { connected: this.usb.connected, queued: this.usb.queued, delivered: this.usb.delivered },
        };
      case 'service':
        w.setService(!!req.held);
        return {};
      case 'fault':
        w.setFault(req.kind, req.on !== false, req.params || {});
        this.kick();
        return {};
      case 'battery':
        w.setBattery(req.mv);
        return {};
      case 'watch':
        w.watchPin(req.gpio);
        return {};
      case 'edges':
        return { edges: w.watch.get(req.gpio) || [] };
      case 'cut':
        // at an absolute busy cycle, or this many cycles from now
        this.cutAtCycle = req.at_cycle ?? this.busyCycles + (req.in_cycles || 0);
        this.kick();
        return { at_cycle: this.cutAtCycle };
      case 'trace_flash':
        this.flashTrace = req.on === false ? null : [];
        return {};
      case 'flash_trace':
        return { trace: this.flashTrace || [] };
      case 'quit':
        this.finish('quit');
        return {};
      default:
        throw new Error(`unknown op ${req.op}; one of status service fault battery watch edges cut trace_flash flash_trace quit (faults: ${FAULT_KINDS.join(' ')})`);
    }
  }

  listen(socketPath) {
    if (fs.existsSync(socketPath)) fs.unlinkSync(socketPath);
    const server = net.createServer((sock) => {
      let buf = '';
      sock.on('data', (chunk) => {
        buf += chunk.toString();
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          let answer;
          try {
            answer = { ok: true, ...this.op(JSON.parse(line)) };
          } catch (e) {
            answer = { ok: false, error: e.message };
          }
          sock.write(JSON.stringify(answer) + '\n');
        }
      });
      sock.on('error', () => {});
    });
    server.listen(socketPath);
    server.unref();
  }
}

const opts = parseArgs(process.argv.slice(2));
const pico = new EmulatedPico(opts);
if (opts.control) pico.listen(opts.control);
process.stdin.on('data', (bytes) => pico.fromHost(bytes));
// The host side went away (its end of the pty closed: EIO, or end of input on a pipe):
// nobody can reach this Pico any more, so it ends rather than run on as an orphan.
process.stdin.on('error', () => process.exit(0));
process.stdin.on('end', () => { if (!process.stdin.isTTY) return; process.exit(0); });
process.stdout.on('error', () => {}); // nobody reading: the Pico's USB drops it too
if (opts.stats) {
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.on(sig, () => { process.stderr.write(`emu: ${JSON.stringify(pico.stats())}\n`); process.exit(0); });
  }
}
pico.speedOriginNs = 0;
pico.speedOriginWall = performance.now();
setInterval(() => pico.kick(), 50); // a stalled run (e.g. nothing pending) looks again
pico.kick();
