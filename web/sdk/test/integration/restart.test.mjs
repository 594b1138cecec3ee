// The server restarts under a client (SIGTERM: it drains, closing sockets
// with 1012; then it starts again on the same ports and data dir): the
// client reconnects and resumes, and every reading published before,
// during and after the outage arrives exactly once, in order.

import assert from "node:assert/strict";
import { after, before, it } from "node:test";
import { SensorcastClient } from "../../dist/index.js";
import { TestDevice } from "../../../testing/device.mjs";
import { aliceToken, Server } from "../../../testing/server.mjs";
import { nextEvent, sleep, waitFor } from "../../testing/wait.mjs";

let server;
let client;
let device;

before(async () => {
  server = await Server.start();
});

after(async () => {
  client?.close();
  device?.close();
  await server?.dispose();
});

it("(b) resumes without loss across a server restart", { timeout: 60_000 }, async () => {
  client = new SensorcastClient({
    url: server.wsUrl,
    token: await aliceToken(),
    rooms: ["device:my-esp32", "group:simulated"],
    backoff: { baseMs: 200, maxMs: 1000 },
  });
  const got = [];
  client.on("telemetry", (m) => {
    if (m.room === "device:my-esp32" && m.payload.fields.run === "b") got.push({ n: m.payload.fields.n, seq: m.seq });
  });
  const group = [];
  client.on("telemetry", (m) => m.room === "group:simulated" && group.push(m));
  const states = [];
  client.on("state", (s) => states.push(s));
  const gaps = [];
  client.on("gap", (g) => gaps.push(g.room));
  const errors = [];
  client.on("error", (e) => errors.push(e));
  await nextEvent(client, "subscribed");

  device = await TestDevice.connect(server);
  const publish = (from, to) => {
    for (let n = from; n <= to; n++) device.publish({ n, run: "b" });
  };

  // Before the outage.
  publish(1, 10);
  await device.drained();
  await waitFor(() => got.length >= 10, { what: () => `10 readings before the restart, got ${got.length}` });

  // The outage: the server drains and stops; the device queues its readings.
  await server.stop();
  await waitFor(() => client.state === "reconnecting", { what: "reconnecting" });
  const drained = states.find((s) => s.closeCode === 1012);
  assert.ok(drained, `closed with 1012: ${JSON.stringify(states)}`);
  assert.ok(drained.retryAt - Date.now() <= 250, "came back at once after 1012");
  publish(11, 20);
  await sleep(500); // a few failed attempts while nobody listens
  assert.equal(client.state, "reconnecting");

  // The server is back: the device sends its queue, then more.
  await server.start();
  await device.reconnect();
  publish(21, 30);
  await device.drained();
  await waitFor(() => got.length >= 30, {
    timeoutMs: 20_000,
    what: () =>
      `30 readings, got ${got.map((r) => r.n)}; client ${client.state}, states since the restart ` +
      `${JSON.stringify(states.slice(-8))}, errors ${JSON.stringify(errors)}; the server's log:\n${server.log()}`,
  });
  await sleep(500);

  assert.deepEqual(got.map((r) => r.n), Array.from({ length: 30 }, (_, i) => i + 1), "every reading once, in order");
  for (let i = 1; i < got.length; i++) assert.ok(got[i].seq > got[i - 1].seq);
  assert.equal(client.state, "open");
  assert.deepEqual(gaps, []);
  assert.deepEqual(errors.filter((e) => e.code !== "unavailable"), []);
  // The other room resumed as well: its seqs never go back.
  const seqs = group.filter((m) => !m.snapshot).map((m) => m.seq);
  assert.ok(seqs.length > 0);
  for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i] > seqs[i - 1], "group:simulated in order, no duplicate");
  assert.ok(group.some((m) => m.seq > got[got.length - 1].seq), "live again after the restart");
});
