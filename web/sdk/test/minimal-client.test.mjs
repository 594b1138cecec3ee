// Compatibility: a minimal v1 dashboard, written against the first version
// of the contract (it knows `subscribe` and `ping`, and reads only
// msg.type and msg.payload), keeps working while an SDK client on the same
// server uses every newer feature: since/latest resumes, commands with
// traceparent, presence, alerts.

import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { SensorcastClient } from "../dist/index.js";
import { aliceToken, Server } from "../../testing/server.mjs";
import { nextEvent, sleep, waitFor } from "../testing/wait.mjs";

let server;
const cleanups = [];

before(async () => {
  server = await Server.start();
});

after(async () => {
  for (const fn of cleanups.reverse()) await fn();
  await server?.dispose();
});

/** The minimal v1 client: subscribe, ping, and reading type and payload. */
function startMinimalClient(url) {
  const state = { open: false, closed: undefined, types: {}, telemetry: [], errors: [], pingsSent: 0, pongs: 0 };
  const ws = new WebSocket(url);
  let pinger;
  ws.onopen = () => {
    state.open = true;
    ws.send(JSON.stringify({ type: "subscribe", payload: { rooms: ["global"] } }));
    pinger = setInterval(() => {
      state.pingsSent++;
      ws.send(JSON.stringify({ type: "ping" }));
    }, 500);
  };
  ws.onmessage = (ev) => {
    const msg = JSON.parse(ev.data);
    state.types[msg.type] = (state.types[msg.type] ?? 0) + 1;
    if (msg.type === "telemetry") state.telemetry.push({ at: Date.now(), device: msg.payload.device_id, fields: msg.payload.fields });
    if (msg.type === "pong") state.pongs++;
    if (msg.type === "error") state.errors.push(msg.payload);
  };
  ws.onclose = (ev) => {
    clearInterval(pinger);
    state.closed = { code: ev.code, reason: ev.reason };
  };
  state.stop = () => {
    clearInterval(pinger);
    ws.onclose = null;
    ws.close();
  };
  return state;
}

it("(f) a minimal v1 client keeps working next to an SDK client using every newer feature", { timeout: 60_000 }, async () => {
  const token = await aliceToken();
  const minimal = startMinimalClient(`${server.wsUrl}?token=${token}`);
  cleanups.push(() => minimal.stop());
  await waitFor(() => minimal.telemetry.length > 0, { what: "the minimal client's first telemetry" });

  // The SDK client, on a WebSocket the test can see into and cut.
  const sockets = [];
  const sent = [];
  class TapWebSocket extends WebSocket {
    constructor(url) {
      super(url);
      sockets.push(this);
    }
    send(data) {
      sent.push(JSON.parse(data));
      super.send(data);
    }
  }
  const sdk = new SensorcastClient({
    url: server.wsUrl,
    token: () => aliceToken(),
    rooms: ["group:simulated"],
    latest: true,
    WebSocket: TapWebSocket,
    backoff: { baseMs: 100, maxMs: 500 },
    pingIntervalMs: 1000,
  });
  cleanups.push(() => sdk.close());
  const alerts = [];
  sdk.on("alert", (a) => alerts.push(a));
  const telemetry = [];
  sdk.on("telemetry", (m) => telemetry.push(m));
  const sdkErrors = [];
  sdk.on("error", (e) => sdkErrors.push(e));

  // latest: snapshots first.
  await waitFor(() => telemetry.some((m) => m.snapshot) && telemetry.some((m) => !m.snapshot), { what: "snapshot and live telemetry" });
  // presence
  const presence = await sdk.presence("global");
  assert.ok(presence.members.some((m) => m.user_id === "alice" && m.connections >= 1), JSON.stringify(presence));
  // commands with traceparent, over MQTT and over WebSocket
  for (const deviceId of ["sim-002", "sim-ws-002"]) {
    const call = sdk.command({ deviceId, name: "blink", params: { times: 3 }, traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" });
    assert.equal((await call.done).status, "succeeded");
  }
  assert.ok(sent.some((m) => m.type === "command" && m.traceparent));
  // since: cut the SDK's socket; it resumes with since.
  sockets.at(-1).close(4001, "test cuts the connection");
  await nextEvent(sdk, "subscribed", () => true, 10_000);
  const resubscribe = sent.filter((m) => m.type === "subscribe").at(-1);
  assert.equal(typeof resubscribe.payload.since?.["group:simulated"], "number", JSON.stringify(resubscribe));
  // more rooms, unsubscribe, app pings
  await sdk.subscribe(["device:sim-003", "global"], { latest: true });
  await sdk.unsubscribe("global");
  assert.ok((await sdk.ping()) >= 0);
  // alerts of the demo rule "door left open" (it holds for 10 s)
  await waitFor(() => alerts.length > 0, { timeoutMs: 40_000, what: "an alert of the demo rule" });
  assert.equal(alerts[0].payload.rule_name, "door left open");
  assert.equal(typeof alerts[0].seq, "number");

  // Meanwhile, the minimal client was never bothered.
  const before = minimal.telemetry.length;
  await sleep(1200);
  assert.ok(minimal.telemetry.length > before, "still receiving telemetry");
  assert.equal(minimal.closed, undefined, `never disconnected (${JSON.stringify(minimal.closed)})`);
  assert.deepEqual(minimal.errors, []);
  assert.ok(minimal.pongs >= minimal.pingsSent - 1 && minimal.pongs > 3, `pongs ${minimal.pongs} for ${minimal.pingsSent} pings`);
  assert.equal(minimal.types.connected, 1);
  assert.equal(minimal.types.subscribed, 1);
  assert.ok(minimal.telemetry.every((t) => typeof t.device === "string" && typeof t.fields === "object"));
  assert.deepEqual(sdkErrors, []);
});
