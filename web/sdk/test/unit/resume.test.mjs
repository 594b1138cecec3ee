import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { flush, makeClient, openAndSubscribe, sequenceRandom } from "../../testing/fakes.mjs";

const seqs = (events, room) => events.filter((e) => e.name === "telemetry" && (!room || e.room === room)).map((e) => e.seq);

describe("resume", () => {
  it("re-subscribes every room with since = the last seq seen in it", async () => {
    const t = makeClient({ rooms: ["device:a", "device:b", "global"] });
    let ws = await openAndSubscribe(t);
    assert.deepEqual(ws.sentOfType("subscribe")[0].payload, { rooms: ["device:a", "device:b", "global"] });
    ws.telemetry("device:a", 5);
    ws.telemetry("device:a", 9);
    ws.telemetry("global", 7);
    ws.serverClose(1012);
    await t.clock.advance(250);
    ws = t.WS.last;
    ws.open();
    const [req] = ws.sentOfType("subscribe");
    assert.deepEqual(req.payload, { rooms: ["device:a", "device:b", "global"], since: { "device:a": 9, global: 7 } });
    assert.equal(t.client.lastSeq("device:a"), 9);
    t.client.close();
  });

  it("asks for latest only for the rooms that want it, and with since once they have a seq", async () => {
    const t = makeClient({ rooms: ["device:a"], latest: true });
    let ws = await openAndSubscribe(t);
    assert.equal(ws.sentOfType("subscribe")[0].payload.latest, true);
    const done = t.client.subscribe("device:b", { latest: false });
    await flush();
    assert.deepEqual(ws.lastSent("subscribe").payload, { rooms: ["device:b"] });
    ws.acceptSubscribe();
    await done;
    ws.telemetry("device:a", 3);
    ws.serverClose(1006);
    await t.clock.advance(1000);
    ws = t.WS.last;
    ws.open();
    const reqs = ws.sentOfType("subscribe").map((r) => r.payload);
    assert.deepEqual(reqs, [{ rooms: ["device:a"], latest: true, since: { "device:a": 3 } }, { rooms: ["device:b"] }]);
    t.client.close();
  });

  it("delivers each room message once and in order: seq at or below the last one is dropped", async () => {
    const t = makeClient({ rooms: ["device:a", "global"] });
    const ws = await openAndSubscribe(t);
    for (const seq of [5, 6, 5, 6, 7, 4, 8]) ws.telemetry("device:a", seq);
    ws.telemetry("global", 5); // its own sequence per room
    ws.telemetry("global", 5);
    assert.deepEqual(seqs(t.events, "device:a"), [5, 6, 7, 8]);
    assert.deepEqual(seqs(t.events, "global"), [5]);
    t.client.close();
  });

  it("drops the duplicates a replay overlaps with across a reconnect", async () => {
    const t = makeClient({ rooms: ["device:a"] });
    let ws = await openAndSubscribe(t);
    ws.telemetry("device:a", 10);
    ws.telemetry("device:a", 11);
    ws.serverClose(1013, "slow consumer");
    await t.clock.advance(250);
    ws = await openAndSubscribe(t);
    ws.telemetry("device:a", 11); // a server replaying one too many
    ws.telemetry("device:a", 12);
    assert.deepEqual(seqs(t.events), [10, 11, 12]);
    t.client.close();
  });

  it("flags latest-state messages (no seq) as snapshots and never resumes from them", async () => {
    const t = makeClient({ rooms: ["device:a"], latest: true });
    let ws = await openAndSubscribe(t);
    ws.telemetry("device:a", undefined, { temperature: 20 });
    ws.message({ type: "device_status", room: "device:a", payload: { device_id: "a", status: "online", timestamp: "" } });
    ws.telemetry("device:a", 42, { temperature: 21 });
    const tel = t.of("telemetry");
    assert.deepEqual(tel.map((e) => [e.snapshot, e.seq]), [[true, undefined], [false, 42]]);
    assert.equal(t.of("device_status")[0].snapshot, true);
    assert.equal("seq" in tel[0], false);
    assert.deepEqual(tel[1].payload.fields, { temperature: 21 });
    ws.serverClose(1006);
    await t.clock.advance(1000);
    ws = t.WS.last;
    ws.open();
    assert.deepEqual(ws.lastSent("subscribe").payload.since, { "device:a": 42 });
    t.client.close();
  });

  it("emits gap for a room that could not be recovered, and accepts the server's seqs from there", async () => {
    const t = makeClient({ rooms: ["device:a"] });
    let ws = await openAndSubscribe(t);
    ws.telemetry("device:a", 500);
    ws.serverClose(1006);
    await t.clock.advance(1000);
    ws = t.WS.last;
    ws.open();
    ws.acceptSubscribe(undefined, { recovered: { "device:a": false } });
    // The server's stream was reset: its seqs start again.
    ws.telemetry("device:a", 3);
    ws.telemetry("device:a", 4);
    ws.telemetry("device:a", 4);
    assert.deepEqual(t.of("gap").map((g) => g.room), ["device:a"]);
    assert.deepEqual(seqs(t.events), [500, 3, 4]);
    t.client.close();
  });

  it("drops messages of rooms it left, and forgets their resume point", async () => {
    const t = makeClient({ rooms: ["device:a", "device:b"] });
    const ws = await openAndSubscribe(t);
    ws.telemetry("device:a", 1);
    const left = t.client.unsubscribe("device:a");
    await flush();
    ws.reply(ws.lastSent("unsubscribe"), "unsubscribed", { rooms: ["device:b"] });
    assert.deepEqual(await left, ["device:b"]);
    ws.telemetry("device:a", 2); // in flight
    assert.deepEqual(seqs(t.events), [1]);
    assert.deepEqual(t.client.rooms(), ["device:b"]);
    assert.equal(t.client.lastSeq("device:a"), undefined);
    t.client.close();
  });

  it("subscribes rooms refused as unavailable again, with the same since, after a jittered backoff", async () => {
    const t = makeClient({ rooms: ["device:a", "device:b"], random: sequenceRandom(0.9999999) });
    let ws = await openAndSubscribe(t);
    ws.telemetry("device:a", 70);
    ws.serverClose(1012);
    await t.clock.advance(250);
    ws = t.WS.last;
    ws.open();
    const later = t.client.subscribe("device:c");
    let settled = false;
    later.then(() => (settled = true));
    const [first, second] = ws.sentOfType("subscribe");
    ws.acceptSubscribe(first, {
      rejected: [{ room: "device:a", code: "unavailable", reason: "the room's history is unavailable right now" }],
      rooms: ["device:b"],
    });
    ws.acceptSubscribe(second, {
      rejected: [{ room: "device:c", code: "unavailable", reason: "registry not loaded" }],
      rooms: ["device:b"],
    });
    await flush();
    assert.equal(settled, false, "waits until the room is joined");
    assert.deepEqual(t.client.rooms(), ["device:a", "device:b", "device:c"]);
    assert.deepEqual(t.clock.delays().filter((d) => d <= 1000), [1000]);
    await t.clock.advance(999);
    assert.equal(ws.sentOfType("subscribe").length, 2);
    await t.clock.advance(1);
    const retry = ws.lastSent("subscribe");
    assert.deepEqual(retry.payload, { rooms: ["device:a", "device:c"], since: { "device:a": 70 } });
    // Still unavailable: the next retry waits up to twice as long.
    ws.acceptSubscribe(retry, { rejected: [{ room: "device:a", code: "unavailable", reason: "" }], rooms: ["device:b", "device:c"] });
    await flush();
    assert.equal(settled, true);
    assert.deepEqual((await later).rejected, []);
    assert.deepEqual(t.clock.delays().filter((d) => d <= 2000), [2000]);
    await t.clock.advance(2000);
    ws.acceptSubscribe(ws.lastSent("subscribe"));
    assert.deepEqual(ws.sentOfType("subscribe").length, 4);
    assert.equal(t.of("error").length, 0);
    t.client.close();
  });

  it("resolves other rejections, drops those rooms, and reports them when nobody awaits them", async () => {
    const t = makeClient({ rooms: ["device:a"] });
    let ws = await openAndSubscribe(t);
    const res = t.client.subscribe(["device:x", "group:g"]);
    await flush();
    ws.acceptSubscribe(ws.lastSent("subscribe"), {
      rooms: ["device:a", "group:g"],
      rejected: [{ room: "device:x", code: "forbidden", reason: "the token does not grant this room" }],
    });
    assert.deepEqual(await res, {
      rooms: ["device:a", "group:g"],
      rejected: [{ room: "device:x", code: "forbidden", reason: "the token does not grant this room" }],
      recovered: {},
    });
    assert.deepEqual(t.client.rooms(), ["device:a", "group:g"]);
    assert.equal(t.of("error").length, 0, "a rejection someone awaits is not an error event");
    // On an automatic re-subscribe, nobody awaits: it becomes an error event.
    ws.serverClose(1012);
    await t.clock.advance(250);
    ws = t.WS.last;
    ws.open();
    ws.acceptSubscribe(undefined, { rooms: ["group:g"], rejected: [{ room: "device:a", code: "forbidden", reason: "no" }] });
    assert.deepEqual(t.of("error").map((e) => [e.code, e.room]), [["forbidden", "device:a"]]);
    assert.deepEqual(t.client.rooms(), ["group:g"]);
    t.client.close();
  });

  it("records rooms while disconnected and resolves after the next connect's subscribe", async () => {
    const t = makeClient({ autoConnect: false });
    const res = t.client.subscribe("device:a", { latest: true });
    assert.deepEqual(t.client.rooms(), ["device:a"]);
    t.client.connect();
    await flush();
    t.WS.last.fail(); // the first attempt fails: still waiting
    await t.clock.advance(1000);
    const ws = t.WS.last;
    ws.open();
    assert.deepEqual(ws.lastSent("subscribe").payload, { rooms: ["device:a"], latest: true });
    ws.acceptSubscribe();
    assert.deepEqual((await res).rooms, ["device:a"]);
    t.client.close();
  });

  it("splits the subscribes of many rooms below the server's frame and room limits", async () => {
    const rooms = Array.from({ length: 300 }, (_, i) => `device:sensor-with-a-long-name-${String(i).padStart(4, "0")}`);
    const t = makeClient({ rooms });
    let ws = await openAndSubscribe(t);
    for (const room of rooms) ws.telemetry(room, 1_000_000_000 + rooms.indexOf(room));
    ws.serverClose(1012);
    await t.clock.advance(250);
    ws = t.WS.last;
    ws.open();
    const reqs = ws.sentOfType("subscribe");
    assert.ok(reqs.length >= 3);
    for (const r of reqs) {
      assert.ok(JSON.stringify(r).length < 8192, `frame of ${JSON.stringify(r).length} bytes`);
      assert.ok(r.payload.rooms.length <= 100);
    }
    assert.deepEqual(reqs.flatMap((r) => r.payload.rooms), rooms);
    assert.equal(reqs.reduce((n, r) => n + Object.keys(r.payload.since).length, 0), 300);
    t.client.close();
  });
});

describe("unsubscribe", () => {
  it("splits the unsubscribes of many long room names below the frame limit", async () => {
    const rooms = Array.from({ length: 200 }, (_, i) => `device:${"x".repeat(120)}-${i}`);
    const t = makeClient({ rooms, pingIntervalMs: 0 });
    const ws = await openAndSubscribe(t);
    const left = t.client.unsubscribe(rooms);
    const reqs = ws.sentOfType("unsubscribe");
    assert.ok(reqs.length >= 4);
    for (const r of reqs) assert.ok(JSON.stringify(r).length < 8192);
    assert.deepEqual(reqs.flatMap((r) => r.payload.rooms), rooms);
    for (const r of reqs) ws.reply(r, "unsubscribed", { rooms: [] });
    assert.deepEqual(await left, []);
    assert.deepEqual(t.client.rooms(), []);
    t.client.close();
  });
});
