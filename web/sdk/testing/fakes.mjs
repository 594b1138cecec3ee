// Test doubles for the unit tests: a controllable clock, a scripted
// WebSocket and fetch, so that timing logic is tested without real sleeps.
// (Kept outside test/: node --test runs every .mjs file under test/.)

import { SensorcastClient } from "../dist/index.js";

/** Lets every pending promise continuation run (microtasks drain before a macrotask). */
export const flush = () => new Promise((resolve) => setImmediate(resolve));

/** A clock whose time only moves when the test says so. */
export class FakeClock {
  constructor(start = Date.UTC(2026, 0, 1)) {
    this.t = start;
    this.timers = new Map();
    this.nextId = 1;
  }
  now() {
    return this.t;
  }
  setTimeout(fn, ms) {
    const id = this.nextId++;
    this.timers.set(id, { id, at: this.t + Math.max(0, ms), fn });
    return id;
  }
  clearTimeout(id) {
    this.timers.delete(id);
  }
  /** How many timers are armed. */
  get pending() {
    return this.timers.size;
  }
  /** Delays (from now) of the armed timers, soonest first. */
  delays() {
    return [...this.timers.values()].map((t) => t.at - this.t).sort((a, b) => a - b);
  }
  /** Moves time forward by ms, running the timers that fall due, in order, with their continuations. */
  async advance(ms) {
    const end = this.t + ms;
    await flush();
    for (;;) {
      let next;
      for (const t of this.timers.values()) {
        if (t.at <= end && (!next || t.at < next.at || (t.at === next.at && t.id < next.id))) next = t;
      }
      if (!next) break;
      this.timers.delete(next.id);
      this.t = next.at;
      next.fn();
      await flush();
    }
    this.t = end;
    await flush();
  }
}

/** Random numbers from a list (the last one repeats). */
export function sequenceRandom(...values) {
  let i = 0;
  const fn = () => values[Math.min(i++, values.length - 1)];
  fn.set = (...v) => {
    values = v;
    i = 0;
  };
  return fn;
}

/** A WebSocket class whose server side the test plays; every instance is recorded. */
export function fakeWebSocketClass() {
  class FakeWebSocket {
    static instances = [];
    static get last() {
      return FakeWebSocket.instances[FakeWebSocket.instances.length - 1];
    }
    constructor(url) {
      this.url = url;
      this.readyState = 0;
      this.sent = [];
      this.closedBy = undefined;
      this.onopen = this.onmessage = this.onclose = this.onerror = null;
      FakeWebSocket.instances.push(this);
    }
    send(data) {
      if (this.readyState !== 1) throw new Error("InvalidStateError: not open");
      this.sent.push(JSON.parse(data));
    }
    close(code, reason) {
      this.closedBy = { code, reason };
      this.readyState = 3;
    }
    get token() {
      return new URL(this.url).searchParams.get("token");
    }
    // ---- the server's side ----
    open({ connected = true } = {}) {
      this.readyState = 1;
      this.onopen?.({ type: "open" });
      if (connected) this.message({ type: "connected", payload: { connection_id: "conn-1", server_time: "", heartbeat_s: 54 } });
    }
    message(msg) {
      this.onmessage?.({ data: typeof msg === "string" ? msg : JSON.stringify({ timestamp: "2026-01-01T00:00:00.000Z", ...msg }) });
    }
    /** Answers a request the client sent. */
    reply(req, type, payload) {
      this.message(payload === undefined ? { type, request_id: req.request_id } : { type, request_id: req.request_id, payload });
    }
    /** Answers the client's last subscribe, joining every room it asked for (overrides in extra). */
    acceptSubscribe(req = this.lastSent("subscribe"), extra = {}) {
      const rejected = extra.rejected ?? [];
      const joined = req.payload.rooms.filter((r) => !rejected.some((x) => x.room === r));
      const payload = { rooms: extra.rooms ?? joined, rejected, ...(extra.recovered ? { recovered: extra.recovered } : {}) };
      if (!extra.recovered && req.payload.since) {
        payload.recovered = Object.fromEntries(Object.keys(req.payload.since).map((r) => [r, true]));
      }
      this.reply(req, "subscribed", payload);
    }
    telemetry(room, seq, fields = {}) {
      this.message({
        type: "telemetry",
        room,
        ...(seq === undefined ? {} : { seq }),
        payload: { device_id: room.split(":")[1] ?? "d", timestamp: "2026-01-01T00:00:00.000Z", fields },
      });
    }
    serverClose(code = 1000, reason = "") {
      this.readyState = 3;
      this.onclose?.({ code, reason, wasClean: true });
    }
    /** A failed handshake, as Node's WebSocket reports it: `error` and no `close`. */
    fail() {
      this.readyState = 3;
      this.onerror?.({ type: "error" });
    }
    sentOfType(type) {
      return this.sent.filter((m) => m.type === type);
    }
    lastSent(type) {
      const all = this.sentOfType(type);
      return all[all.length - 1];
    }
  }
  return FakeWebSocket;
}

/** A fetch that answers the probe with the statuses given, in turn (the last repeats); an Error is thrown. */
export function fakeFetch(...answers) {
  const calls = [];
  const fn = async (url, init) => {
    calls.push({ url, init });
    const a = answers[Math.min(calls.length - 1, answers.length - 1)];
    if (a instanceof Error) throw a;
    const { status, body = {} } = typeof a === "number" ? { status: a } : a;
    return { status, text: async () => (typeof body === "string" ? body : JSON.stringify(body)) };
  };
  fn.calls = calls;
  return fn;
}

/** A JWT (unsigned: the client never verifies) with the given exp in epoch ms. */
export function jwt(expMs, sub = "alice") {
  const b64 = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  return `${b64({ alg: "HS256", typ: "JWT" })}.${b64({ sub, exp: Math.floor(expMs / 1000) })}.c2lnbmF0dXJl`;
}

/** A client wired to fakes; records its events. */
export function makeClient(options = {}) {
  const clock = options.clock ?? new FakeClock();
  const WS = fakeWebSocketClass();
  const fetch = options.fetch ?? fakeFetch(503);
  const random = options.random ?? sequenceRandom(0.5);
  const events = [];
  const client = new SensorcastClient({
    url: "ws://edge.test/api/v1/ws",
    token: "static-token",
    ...options,
    clock,
    WebSocket: WS,
    fetch,
    random,
    autoConnect: false,
  });
  /** @type {(keyof import("../dist/index.js").ClientEvents)[]} */
  const names = ["state", "error", "gap", "telemetry", "device_status", "alert", "subscribed", "presence_join", "presence_leave"];
  for (const name of names) {
    client.on(name, (e) => events.push({ name, ...e }));
  }
  const of = (name) => events.filter((e) => e.name === name);
  if (options.autoConnect ?? true) client.connect();
  return { client, clock, WS, fetch, random, events, of };
}

/** Opens the client's newest socket (once its attempt has made one), answers its initial subscribe(s) and returns it. */
export async function openAndSubscribe(t) {
  await flush();
  const ws = t.WS.last;
  ws.open();
  for (const req of ws.sentOfType("subscribe")) ws.acceptSubscribe(req);
  await flush();
  return ws;
}
