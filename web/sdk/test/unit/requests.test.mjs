import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { NotConnectedError, RequestTimeoutError, ServerError } from "../../dist/index.js";
import { flush, makeClient, openAndSubscribe } from "../../testing/fakes.mjs";

describe("requests", () => {
  it("ping() resolves with the round trip, matching the reply by request_id", async () => {
    const t = makeClient({ pingIntervalMs: 0 });
    const ws = await openAndSubscribe(t);
    const a = t.client.ping();
    const b = t.client.ping();
    const [pa, pb] = ws.sentOfType("ping");
    assert.notEqual(pa.request_id, pb.request_id);
    await t.clock.advance(40);
    ws.reply(pb, "pong");
    await t.clock.advance(2);
    ws.reply(pa, "pong");
    assert.equal(await b, 40);
    assert.equal(await a, 42);
    assert.equal(t.clock.pending, 0, "no timeout left behind");
    t.client.close();
  });

  it("request ids are unique across clients and connections", async () => {
    const ids = new Set();
    for (let c = 0; c < 3; c++) {
      const t = makeClient({ random: Math.random, pingIntervalMs: 0 });
      for (let conn = 0; conn < 2; conn++) {
        const ws = await openAndSubscribe(t);
        for (let i = 0; i < 5; i++) t.client.ping().catch(() => undefined);
        for (const m of ws.sent) ids.add(m.request_id);
        ws.serverClose(1012);
        await t.clock.advance(250);
      }
      t.client.close();
    }
    assert.equal(ids.size, 30);
  });

  it("presence() returns the members, and rejects while disconnected", async () => {
    const t = makeClient({ pingIntervalMs: 0 });
    await assert.rejects(t.client.presence("global"), NotConnectedError);
    const ws = await openAndSubscribe(t);
    const p = t.client.presence("global");
    const req = ws.lastSent("presence");
    assert.deepEqual(req.payload, { room: "global" });
    ws.reply(req, "presence", { room: "global", count: 1, members: [{ user_id: "alice", connections: 2 }], pod: "new-field" });
    assert.deepEqual(await p, { room: "global", count: 1, members: [{ user_id: "alice", connections: 2 }], pod: "new-field" });
    t.client.close();
  });

  it("an error reply rejects the request with ServerError and its code", async () => {
    const t = makeClient({ pingIntervalMs: 0 });
    const ws = await openAndSubscribe(t);
    const p = t.client.presence("device:secret");
    ws.reply(ws.lastSent("presence"), "error", { code: "forbidden", error: "the token does not grant room" });
    await assert.rejects(p, (err) => err instanceof ServerError && err.code === "forbidden");
    assert.equal(t.of("error").length, 0, "answered errors are not events");
    t.client.close();
  });

  it("times out after requestTimeoutMs and forgets the request", async () => {
    const t = makeClient({ pingIntervalMs: 0, requestTimeoutMs: 3000 });
    const ws = await openAndSubscribe(t);
    const p = t.client.presence("global");
    const req = ws.lastSent("presence");
    const rejected = assert.rejects(p, RequestTimeoutError);
    await t.clock.advance(3000);
    await rejected;
    ws.reply(req, "presence", { room: "global", count: 0, members: [] }); // too late: ignored
    assert.equal(t.of("error").length, 0);
    assert.equal(t.clock.pending, 0);
    t.client.close();
  });

  it("pending requests fail with ConnectionLostError when the connection drops", async () => {
    const t = makeClient({ pingIntervalMs: 0 });
    const ws = await openAndSubscribe(t);
    const p = t.client.presence("global");
    const q = t.client.ping();
    ws.serverClose(1006);
    await assert.rejects(p, { name: "ConnectionLostError" });
    await assert.rejects(q, { name: "ConnectionLostError" });
    t.client.close();
  });

  it("a subscribe without reply times out and the connection is replaced; the rooms stay wanted", async () => {
    const t = makeClient({ pingIntervalMs: 0, requestTimeoutMs: 2000 });
    await openAndSubscribe(t);
    const s = assert.rejects(t.client.subscribe("device:a"), RequestTimeoutError);
    await t.clock.advance(2000);
    await s;
    assert.equal(t.client.state, "reconnecting");
    assert.deepEqual(t.client.rooms(), ["device:a"]);
    await t.clock.advance(1000);
    const ws = t.WS.last;
    ws.open();
    assert.deepEqual(ws.lastSent("subscribe").payload.rooms, ["device:a"]);
    t.client.close();
  });

  it("a refused subscribe (error reply) rejects, drops the rooms; rate_limited is retried", async () => {
    const t = makeClient({ pingIntervalMs: 0 });
    const ws = await openAndSubscribe(t);
    const bad = t.client.subscribe(["device:a"]);
    ws.reply(ws.lastSent("subscribe"), "error", { code: "limit_exceeded", error: "at most 256 rooms per subscribe" });
    await assert.rejects(bad, (e) => e instanceof ServerError && e.code === "limit_exceeded");
    assert.deepEqual(t.client.rooms(), []);
    const later = t.client.subscribe("device:b");
    ws.reply(ws.lastSent("subscribe"), "error", { code: "rate_limited", error: "too many messages" });
    await t.clock.advance(1000);
    assert.equal(ws.sentOfType("subscribe").length, 3);
    ws.acceptSubscribe();
    assert.deepEqual((await later).rooms, ["device:b"]);
    t.client.close();
  });

  it("ignores unknown message types and fields; a non-JSON frame is a protocol error and nothing more", async () => {
    const t = makeClient({ pingIntervalMs: 0, rooms: ["global"] });
    const ws = await openAndSubscribe(t);
    const raw = [];
    t.client.on("message", (m) => raw.push(m.type));
    ws.message({ type: "room_moved", payload: { to: "elsewhere" } });
    ws.message({ type: "telemetry", room: "global", seq: 3, extra: { new: true }, payload: { device_id: "d", timestamp: "", fields: { t: 1 }, unit: "C" } });
    ws.message("this is not json");
    ws.message("[1,2,3]");
    ws.message({ no_type: true });
    ws.message({ type: "alert", room: "global", seq: 4, payload: { alert_id: "a1", device_id: "d", rule_name: "door left open", severity: "warning", field: "door_open", value: 1, threshold: 1, state: "firing", timestamp: "" } });
    ws.message({ type: "error", payload: { code: "shutting_down", error: "bye" } });
    ws.message({ type: "presence_join", payload: { room: "global", user_id: "bob" } });
    assert.deepEqual(raw, ["room_moved", "telemetry", "alert", "error", "presence_join"]);
    assert.deepEqual(t.of("telemetry").map((e) => e.payload.fields.t), [1]);
    assert.equal(t.of("alert")[0].payload.rule_name, "door left open");
    assert.deepEqual(t.of("error").map((e) => e.code), ["protocol", "protocol", "protocol", "shutting_down"]);
    assert.deepEqual(t.of("presence_join").map((e) => [e.room, e.user_id]), [["global", "bob"]]);
    assert.equal(t.client.state, "open");
    assert.equal(ws.closedBy, undefined);
    assert.equal(t.client.connectionId, "conn-1");
    t.client.close();
  });

  it("unsubscribe() while disconnected resolves with the rooms still wanted", async () => {
    const t = makeClient({ autoConnect: false, rooms: ["a", "b"] });
    assert.deepEqual(await t.client.unsubscribe("a"), ["b"]);
    t.client.close();
  });

  it("listeners can unsubscribe, and a throwing listener does not break the client", async () => {
    const t = makeClient({ pingIntervalMs: 0, rooms: ["global"] });
    const ws = await openAndSubscribe(t);
    const seen = [];
    const off = t.client.on("telemetry", (e) => seen.push(e.seq));
    const boom = new Error("listener bug");
    const rethrown = [];
    const realQueueMicrotask = globalThis.queueMicrotask;
    // The emitter rethrows a listener's error on its own, outside the
    // client's processing: catch it there.
    globalThis.queueMicrotask = (fn) => {
      try {
        fn();
      } catch (err) {
        rethrown.push(err);
      }
    };
    try {
      t.client.on("telemetry", () => {
        throw boom;
      });
      ws.telemetry("global", 1);
      off();
      ws.telemetry("global", 2);
    } finally {
      globalThis.queueMicrotask = realQueueMicrotask;
    }
    assert.deepEqual(seen, [1]);
    assert.deepEqual(t.of("telemetry").map((e) => e.seq), [1, 2]);
    assert.deepEqual(rethrown, [boom, boom]);
    t.client.close();
  });
});
