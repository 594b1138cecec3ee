// A device for the SDK's and the dashboard's tests: it speaks the device WebSocket
// (docs/protocol.md section 4) and publishes readings (numbered ones in
// the tests: {"fields": {"n": N}}) strictly in order, none lost: each reading is
// followed by a ping, whose pong says the reading was settled (the edge
// reads a device's frames one at a time); a reading answered with an
// `error` is sent again before the next one. Readings published while the
// device is offline are queued and sent, in order, once it is back.

import { mintToken } from "./server.mjs";

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export class TestDevice {
  constructor(url, deviceId) {
    this.url = url;
    this.deviceId = deviceId;
    /** @type {string} */
    this.token = "";
    this.queue = [];
    this.sent = 0; // readings settled by the platform
    this.ws = undefined;
    this.pending = undefined; // {id, resolve, reject, error}
    this.pumping = false;
    this.counter = 0;
    this.errors = [];
  }

  static async connect(server, deviceId = "my-esp32") {
    const device = new TestDevice(server.deviceWsUrl, deviceId);
    device.token = await mintToken("--device-id", deviceId);
    await device.reconnect();
    return device;
  }

  get connected() {
    return this.ws?.readyState === 1;
  }

  /** Connects, retrying (the server may be starting) for up to timeoutMs. */
  async reconnect(timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      try {
        await this.open();
        this.pump();
        return;
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`device ${this.deviceId} could not connect: ${err.message}`);
        await sleep(100);
      }
    }
  }

  open() {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(`${this.url}?token=${encodeURIComponent(this.token)}`);
      ws.onopen = () => {
        this.ws = ws;
        resolve();
      };
      ws.onerror = () => reject(new Error("connect failed"));
      ws.onclose = () => {
        if (this.ws === ws) this.ws = undefined;
        this.pending?.reject(new Error("closed"));
        reject(new Error("closed"));
      };
      ws.onmessage = (ev) => {
        const msg = JSON.parse(ev.data);
        if (msg.type === "pong" && this.pending && msg.request_id === this.pending.id) this.pending.resolve();
        else if (msg.type === "error" && this.pending) {
          this.errors.push(msg.payload);
          this.pending.error = msg.payload;
        }
      };
    });
  }

  /** Publishes a reading: its fields, or a number n for {n} (queued while offline). */
  publish(fields) {
    this.queue.push(typeof fields === "number" ? { n: fields } : fields);
    this.pump();
  }

  /** Sends the queue in order while connected. */
  async pump() {
    if (this.pumping) return;
    this.pumping = true;
    try {
      while (this.queue.length > 0 && this.connected) {
        const fields = this.queue[0];
        const id = `r${++this.counter}`;
        const settled = new Promise((resolve, reject) => (this.pending = { id, resolve, reject }));
        try {
          this.ws.send(JSON.stringify({ type: "telemetry", request_id: `t${this.counter}`, payload: { fields } }));
          this.ws.send(JSON.stringify({ type: "ping", request_id: id }));
          await settled;
        } catch {
          break; // disconnected: the reading stays queued (it may have been stored: the dashboard dedupes by seq, not by n)
        }
        const error = this.pending?.error;
        this.pending = undefined;
        if (error) {
          await sleep(error.code === "rate_limited" ? 200 : 50); // send it again
          continue;
        }
        this.queue.shift();
        this.sent++;
        // The edge's inbound limit is 20 messages/s per connection (two per reading).
        await sleep(110);
      }
    } finally {
      this.pumping = false;
    }
  }

  /** Waits until every reading published so far is settled. */
  async drained(timeoutMs = 20_000) {
    const deadline = Date.now() + timeoutMs;
    while (this.queue.length > 0) {
      if (Date.now() > deadline) throw new Error(`device ${this.deviceId}: ${this.queue.length} readings not sent`);
      await sleep(20);
    }
  }

  close() {
    const ws = this.ws;
    this.ws = undefined;
    this.queue = [];
    ws?.close();
  }
}
