// The USB host's side of the Pico's CDC serial: enumeration by rp2040js's USBCDC, with
// its one habit that kept the emulated Pico from ever idling replaced. USBCDC answers the
// device's every OUT-endpoint read at once, with a zero-length packet when the host has
// nothing to send; TinyUSB takes the packet in an interrupt and arms the endpoint again,
// 10 us later the next empty packet comes, and the core never sleeps long enough for the
// emulator to skip time (the run crawled at about 0.25x real time). A real host sends
// OUT data only when it has some: here the read is held until host bytes arrive.
import { USBCDC } from 'rp2040js';

const OUT_QUEUE_MAX = 1 << 20; // host bytes held for the device at most (then dropped)

export class CdcHost {
  // stock: keep rp2040js's own answer to every read (the benchmark's "before" figure)
  constructor(usbCtrl, onData, stock = false) {
    this.usb = usbCtrl;
    this.cdc = new USBCDC(usbCtrl);
    this.queue = []; // Uint8Arrays from the host, oldest first
    this.queued = 0;
    this.pending = null; // {endpoint, size}: the device's armed OUT buffer
    this.connected = false;
    this.delivered = 0; // bytes handed to the device
    this.cdc.onDeviceConnected = () => { this.connected = true; this.flush(); };
    this.cdc.onSerialData = onData;
    const enumerate = usbCtrl.onEndpointRead; // USBCDC's, for its own endpoint 0 work
    if (stock) {
      this.send = (bytes) => { for (const b of bytes) this.cdc.sendSerialByte(b); this.delivered += bytes.length; return true; };
      return;
    }
    usbCtrl.onEndpointRead = (endpoint, size) => {
      if (endpoint !== this.cdc.outEndpoint) {
        enumerate(endpoint, size);
        return;
      }
      this.pending = { endpoint, size };
      this.flush();
    };
  }

  send(bytes) {
    if (this.queued + bytes.length > OUT_QUEUE_MAX) return false;
    this.queue.push(bytes);
    this.queued += bytes.length;
    this.flush();
    return true;
  }

  flush() {
    if (!this.pending || !this.queued) return;
    const { endpoint, size } = this.pending;
    const out = new Uint8Array(Math.min(size, this.queued));
    let n = 0;
    while (n < out.length) {
      const head = this.queue[0];
      const take = Math.min(head.length, out.length - n);
      out.set(head.subarray(0, take), n);
      n += take;
      if (take === head.length) this.queue.shift();
      else this.queue[0] = head.subarray(take);
    }
    this.queued -= n;
    this.delivered += n;
    this.pending = null;
    this.usb.endpointReadDone(endpoint, out);
  }
}
