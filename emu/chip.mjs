// One power-up of the emulated RP2040 (rp2040js), with what the harness adds to it:
// - the bootrom's flash-writing functions trapped (flash.mjs);
// - the PIO clocked by the emulated clock: rp2040js 1.4.1 steps its state machines from
//   wall-clock timers, ignoring clock dividers and delays, so pulse widths and rates
//   would mean nothing. Here each state machine executes one instruction per
//   (1 + delay) x divider system cycles, on the emulator's own clock, and sleeps while it
//   stalls (e.g. on an empty TX FIFO) until the core touches its PIO block;
// - the flash's unique id answered to the Read Unique ID command (0x4B), which the
//   pico-sdk sends at boot (machine.unique_id());
// - the watchdog's trigger turned into a chip reset request, and its scratch registers
//   and reset reason carried over into the next power-up as the silicon keeps them;
// - rp2040js's own log kept off stdout, which carries the USB serial.
import { RP2040 } from 'rp2040js';

const CYCLE_NS = 8; // 125 MHz

// rp2040js reports every register it does not model (e.g. the inter-core FIFO that the
// flash code reads); EMU_DEBUG=1 shows them
const say = (component, message) => process.stderr.write(`emu: ${component}: ${message}\n`);
const quietLogger = {
  debug() {},
  info() {},
  warn(component, message) { if (process.env.EMU_DEBUG) say(component, message); },
  error(component, message) { if (process.env.EMU_DEBUG) say(component, message); },
};

const SSI_DR0 = 0x60;
const CMD_READ_UNIQUE_ID = 0x4b;
const RUID_DUMMY_BYTES = 4; // W25Q16JV: 0x4B, four dummy bytes, then the 64-bit id

class PioClock {
  // Steps one PIO block's state machines on the emulated clock.
  constructor(mcu, pio) {
    this.pio = pio;
    this.machines = pio.machines;
    this.alarms = this.machines.map((m, i) => mcu.clock.createAlarm(() => this.tick(i)));
    this.parked = this.machines.map(() => true);
    pio.run = () => { this.wake(); }; // rp2040js's own wall-clock stepping, replaced
    pio.stop = () => {};
    const write = pio.writeUint32.bind(pio);
    pio.writeUint32 = (offset, value) => { write(offset, value); this.wake(); };
    const read = pio.readUint32.bind(pio);
    pio.readUint32 = (offset) => { const v = read(offset); this.wake(); return v; };
  }

  cycleNs(m) {
    const div = (m.clockDivInt || 65536) + m.clockDivFrac / 256;
    return CYCLE_NS * div;
  }

  wake() {
    for (let i = 0; i < 4; i++) {
      if (this.parked[i] && this.machines[i].enabled) {
        this.parked[i] = false;
        this.alarms[i].schedule(this.cycleNs(this.machines[i]));
      }
    }
  }

  tick(i) {
    const m = this.machines[i];
    if (!m.enabled) { this.parked[i] = true; return; }
    const before = m.cycles;
    m.step();
    this.pio.checkChangedPins();
    const cycles = m.cycles - before;
    if (cycles <= 0) { this.parked[i] = true; return; } // stalled: wait for the core
    this.alarms[i].schedule(cycles * this.cycleNs(m));
  }
}

export class Chip {
  // rom: the patched bootrom; flash: a FlashFile; uid: 8 bytes; carry: {reason, scratch}
  // from the previous power-up's watchdog, or null after a power cut
  constructor(rom, flash, uid, carry) {
    const mcu = new RP2040();
    this.mcu = mcu;
    this.clock = mcu.clock;
    mcu.logger = quietLogger;
    mcu.loadBootrom(rom);
    mcu.flash.set(flash.image); // the flash as it is
    this.resetRequested = null;
    this.breakCode = -1;
    mcu.onBreak = (code) => { this.breakCode = code; };
    this.pioClocks = mcu.pio.map((pio) => new PioClock(mcu, pio));
    this.watchdog = mcu.peripherals[0x40058];
    if (carry) {
      this.watchdog.reason = carry.reason;
      this.watchdog.scratchData.set(carry.scratch);
    }
    this.watchdog.onWatchdogTrigger = () => {
      // the chip resets: this watchdog stops here (rp2040js would re-arm it at once, at a
      // count of 0, and fire again and again within the same instant)
      this.watchdog.alarm.enable = false;
      this.watchdog.timer.enable = false;
      this.resetRequested = {
        reason: this.watchdog.reason,
        scratch: new Uint32Array(this.watchdog.scratchData),
      };
    };
    this.answerUniqueId(uid);
    mcu.core.PC = 0x10000000; // boot2 at the start of flash, as the bootrom would jump
  }

  answerUniqueId(uid) {
    const ssi = this.mcu.peripherals[0x18000];
    const write = ssi.writeUint32.bind(ssi);
    const read = ssi.readUint32.bind(ssi);
    let index = -1; // byte index within a Read Unique ID command, -1 outside one
    let answer = -1;
    ssi.writeUint32 = (offset, value) => {
      write(offset, value);
      if (offset !== SSI_DR0) return;
      if (index < 0 && value === CMD_READ_UNIQUE_ID) {
        index = 0;
        answer = -1;
      } else if (index >= 0) {
        index++;
        const i = index - 1 - RUID_DUMMY_BYTES;
        answer = i >= 0 && i < 8 ? uid[i] : -1;
        if (i >= 7) index = -1;
      }
    };
    ssi.readUint32 = (offset) => {
      if (offset === SSI_DR0 && answer >= 0) {
        const a = answer;
        answer = -1;
        return a;
      }
      return read(offset);
    };
  }
}
