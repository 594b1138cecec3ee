// The SDK against the real server (`sensorcast run`), one server for the
// whole file: rooms and presence, resuming after the network fails under
// the client, commands, and refused tokens.

import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { SensorcastClient } from "../../dist/index.js";
import { TestDevice } from "../../../testing/device.mjs";
import { TcpProxy } from "../../testing/proxy.mjs";
import { aliceToken, mintToken, Server } from "../../../testing/server.mjs";
import { nextEvent, sleep, waitFor } from "../../testing/wait.mjs";

let server;
let token;
const cleanups = [];

before(async () => {
  server = await Server.start();
  token = await aliceToken();
});

after(async () => {
  for (const fn of cleanups.reverse()) await fn();
  await server?.dispose();
});

/** How many WebSockets each client made (connection attempts). */
const attemptCounts = new WeakMap();
const attempts = (c) => attemptCounts.get(c).attempts;

/** A client that the file's cleanup closes, counting its connection attempts. */
function client(options) {
  const counter = { attempts: 0 };
  class CountingWebSocket extends WebSocket {
    constructor(url) {
      super(url);
      counter.attempts++;
    }
  }
  const c = new SensorcastClient({ url: server.wsUrl, token, WebSocket: CountingWebSocket, ...options });
  attemptCounts.set(c, counter);
  cleanups.push(() => c.close());
  return c;
}

/** The numbered readings of one run of a TestDevice, as the client delivers them. */
function readings(c, run) {
  const got = [];
  c.on("telemetry", (m) => {
    if (m.room === "device:my-esp32" && m.payload.fields.run === run) got.push({ n: m.payload.fields.n, seq: m.seq, snapshot: m.snapshot });
  });
  return got;
}

function assertExactlyOnceInOrder(got, count) {
  assert.deepEqual(got.map((r) => r.n), Array.from({ length: count }, (_, i) => i + 1), "every reading once, in order");
  for (let i = 1; i < got.length; i++) assert.ok(got[i].seq > got[i - 1].seq, `seq increases: ${got[i - 1].seq} then ${got[i].seq}`);
  assert.ok(got.every((r) => !r.snapshot));
}

describe("a live server", { timeout: 60_000 }, () => {
  it("(a) subscribes, receives telemetry, and presence lists the user", async () => {
    const c = client({ rooms: ["device:sim-001"] });
    const first = await nextEvent(c, "telemetry", (m) => m.room === "device:sim-001", 20_000);
    assert.equal(first.payload.device_id, "sim-001");
    assert.equal(typeof first.seq, "number");
    assert.equal(first.snapshot, false);
    assert.equal(typeof first.payload.fields.temperature, "number");
    assert.equal(c.state, "open");

    const presence = await c.presence("device:sim-001");
    assert.equal(presence.room, "device:sim-001");
    assert.ok(presence.members.some((m) => m.user_id === "alice" && m.connections >= 1), JSON.stringify(presence));
    assert.equal(presence.count, presence.members.length);

    // latest: the current state first, flagged as snapshots, then live. sim-001
    // has sent a reading (and, before it, its status), so the server holds both.
    const watcher = client({});
    const seen = [];
    watcher.on("telemetry", (m) => seen.push(m));
    watcher.on("device_status", (m) => seen.push(m));
    const res = await watcher.subscribe(["device:sim-001", "device:no-such-device"], { latest: true });
    assert.deepEqual(res.rejected.map((r) => [r.room, r.code]), [["device:no-such-device", "invalid_room"]]);
    assert.ok(res.rooms.includes("device:sim-001"));
    assert.deepEqual(watcher.rooms(), ["device:sim-001"]);
    await waitFor(() => seen.some((m) => !m.snapshot), { timeoutMs: 20_000, what: "live telemetry after the snapshot" });
    const snapshots = seen.filter((m) => m.snapshot);
    assert.deepEqual(snapshots.map((m) => m.type).sort(), ["device_status", "telemetry"]);
    assert.ok(seen.indexOf(snapshots.at(-1)) < seen.findIndex((m) => !m.snapshot), "snapshots come first");
    assert.ok(snapshots.every((m) => m.seq === undefined && m.room === "device:sim-001"));
    assert.equal(snapshots.find((m) => m.type === "device_status").payload.status, "online");
    await c.subscribe("device:sim-ws-001");
    assert.deepEqual(c.rooms(), ["device:sim-001", "device:sim-ws-001"]);
    assert.equal(await c.unsubscribe("device:sim-ws-001").then((r) => r.includes("device:sim-ws-001")), false);
    assert.ok((await c.ping()) >= 0);
  });

  it("(c) resumes without loss after the connection drops, and after it silently dies", async () => {
    const proxy = await TcpProxy.start(server.ports.http);
    cleanups.push(() => proxy.close());
    const c = client({
      url: proxy.url(server.wsUrl),
      rooms: ["device:my-esp32"],
      backoff: { baseMs: 100, maxMs: 400 },
      pingIntervalMs: 500,
      pongTimeoutMs: 700,
    });
    const got = readings(c, "c");
    const states = [];
    c.on("state", (s) => states.push(s));
    const errors = [];
    c.on("error", (e) => errors.push(e));
    await nextEvent(c, "subscribed");
    const device = await TestDevice.connect(server);
    cleanups.push(() => device.close());
    const publish = async (from, to) => {
      for (let n = from; n <= to; n++) device.publish({ n, run: "c" });
    };

    await publish(1, 8);
    await waitFor(() => got.length >= 8, { what: () => `8 readings, got ${got.length}` });

    // The network drops the connection, and refuses new ones for a while.
    proxy.refuse(true);
    proxy.cut();
    await waitFor(() => c.state === "reconnecting", { what: "reconnecting" });
    await publish(9, 16);
    await device.drained();
    await sleep(300);
    proxy.refuse(false);
    await waitFor(() => got.length >= 16, { what: () => `16 readings, got ${got.length}` });

    // The link dies without a sound: only the ping can tell.
    const opened = states.filter((s) => s.state === "open").length;
    proxy.stall();
    await publish(17, 24);
    await device.drained();
    await waitFor(() => states.filter((s) => s.state === "open").length > opened, { timeoutMs: 10_000, what: "a new connection after the stall" });
    await waitFor(() => got.length >= 24, { what: () => `24 readings, got ${got.length}` });
    await sleep(300); // anything extra would show up now
    assertExactlyOnceInOrder(got, 24);
    assert.ok(attempts(c) >= 3, `attempts: ${attempts(c)}`);
    assert.deepEqual(errors, []);
    device.close();
  });

  it("(d) commands a device over MQTT and one over WebSocket, with live statuses", async () => {
    const c = client({});
    await nextEvent(c, "state", (s) => s.state === "open");
    for (const deviceId of ["sim-001", "sim-ws-001"]) {
      const call = c.command({
        deviceId,
        name: "blink",
        params: { times: 3 },
        timeoutMs: 10_000,
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
      });
      const statuses = [];
      call.onResult((r) => statuses.push(r.status));
      const iterated = [];
      for await (const r of call) iterated.push(r);
      const final = await call.done;
      assert.equal(final.status, "succeeded", `${deviceId}: ${JSON.stringify(iterated)}`);
      assert.deepEqual(statuses, ["accepted", "delivered", "succeeded"], deviceId);
      assert.deepEqual(iterated.map((r) => r.status), statuses);
      assert.ok(final.command_id, "a command id");
      assert.ok(iterated.every((r) => r.device_id === deviceId && r.command_id === final.command_id));
    }

    const unknown = c.command({ deviceId: "sim-001", name: "self-destruct", timeoutMs: 10_000 });
    const seen = [];
    unknown.onResult((r) => seen.push(r.status));
    assert.equal((await unknown.done).status, "failed");
    assert.deepEqual(seen, ["accepted", "delivered", "failed"]);

    // A token that may watch but not command.
    const watcher = client({ token: await mintToken("--sub", "bob", "--rooms", "global,device:*,group:*") });
    await nextEvent(watcher, "state", (s) => s.state === "open");
    const refused = await watcher.command({ deviceId: "sim-001", name: "blink", params: { times: 3 } }).done;
    assert.equal(refused.status, "rejected");
    assert.match(refused.result.reason, /does not grant/);

    // A malformed command comes back as rejected with the error's code.
    const malformed = await c.command({ deviceId: "sim 001", name: "blink" }).done;
    assert.deepEqual([malformed.status, malformed.result.code], ["rejected", "invalid_payload"]);
  });

  it("(e) a bad token ends unauthorized without a reconnect loop; an expired one is refreshed by its provider", async () => {
    // A fixed bad token: one attempt, then unauthorized for good.
    const bad = client({ token: "not-a-jwt", backoff: { baseMs: 50, maxMs: 100 } });
    const unauthorized = await nextEvent(bad, "error", (e) => e.code === "unauthorized");
    assert.match(unauthorized.error, /malformed|token/);
    assert.equal(bad.state, "unauthorized");

    // A provider with only bad tokens: one refresh, one retry, no more.
    let badCalls = 0;
    const badProvider = client({ token: () => `bad-${++badCalls}`, backoff: { baseMs: 50, maxMs: 100 } });
    await waitFor(() => badProvider.state === "unauthorized", { what: "unauthorized" });

    // A provider whose first token is refused: the fresh one connects.
    const good = await aliceToken();
    let flakyCalls = 0;
    const flaky = client({ token: () => (++flakyCalls === 1 ? "revoked" : good) });
    await nextEvent(flaky, "state", (s) => s.state === "open");
    assert.equal(attempts(flaky), 2);

    // An expired token is not even tried: the provider is asked again.
    const expired = await aliceToken("--ttl", "-1h");
    let expiredCalls = 0;
    const renewed = client({ token: async () => (++expiredCalls === 1 ? expired : good), rooms: ["device:sim-002"] });
    await nextEvent(renewed, "telemetry", (m) => m.room === "device:sim-002");
    assert.equal(attempts(renewed), 1);
    assert.equal(expiredCalls, 2);

    // No loop: still the same number of attempts a while later.
    await sleep(1500);
    assert.equal(attempts(bad), 1);
    assert.equal(attempts(badProvider), 2);
    assert.equal(badCalls, 2);
    assert.equal(bad.state, "unauthorized");
    assert.equal(badProvider.state, "unauthorized");

    // A fixed expired token: no attempt at all.
    const stale = client({ token: expired });
    await waitFor(() => stale.state === "unauthorized", { what: "unauthorized" });
    assert.equal(attempts(stale), 0);
  });
});
