import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { makeClient, openAndSubscribe, sequenceRandom } from "../../testing/fakes.mjs";

describe("application ping", () => {
  it("pings after pingIntervalMs of silence and reconnects when nothing answers within pongTimeoutMs", async () => {
    const t = makeClient({ rooms: ["global"], random: sequenceRandom(0) });
    const ws = await openAndSubscribe(t);
    await t.clock.advance(25_000 - 1);
    assert.equal(ws.sentOfType("ping").length, 0);
    await t.clock.advance(1);
    assert.equal(ws.sentOfType("ping").length, 1);
    assert.ok(ws.lastSent("ping").request_id);
    await t.clock.advance(10_000 - 1);
    assert.equal(t.client.state, "open");
    await t.clock.advance(1);
    assert.ok(ws.closedBy, "the dead socket is closed");
    assert.equal(t.client.state, "reconnecting");
    await t.clock.advance(0);
    assert.equal(t.WS.instances.length, 2);
    t.client.close();
  });

  it("any message is a sign of life: a busy connection never pings", async () => {
    const t = makeClient({ rooms: ["global"] });
    const ws = await openAndSubscribe(t);
    for (let i = 1; i <= 12; i++) {
      await t.clock.advance(10_000);
      ws.telemetry("global", i);
    }
    assert.equal(ws.sentOfType("ping").length, 0);
    assert.equal(t.client.state, "open");
    t.client.close();
  });

  it("a pong keeps the connection; the next ping comes after another idle interval", async () => {
    const t = makeClient({ pingIntervalMs: 1000, pongTimeoutMs: 500 });
    const ws = await openAndSubscribe(t);
    await t.clock.advance(1000);
    ws.reply(ws.lastSent("ping"), "pong");
    await t.clock.advance(999);
    assert.equal(ws.sentOfType("ping").length, 1);
    await t.clock.advance(1);
    assert.equal(ws.sentOfType("ping").length, 2);
    await t.clock.advance(499);
    ws.telemetry("device:x", 1); // not even a room of ours: still a sign of life
    await t.clock.advance(1);
    assert.equal(t.client.state, "open");
    assert.equal(t.WS.instances.length, 1);
    await t.clock.advance(1498); // silent since the telemetry: a ping 1000 ms after it, dead 500 ms later
    assert.equal(t.client.state, "open");
    await t.clock.advance(1);
    assert.equal(t.client.state, "reconnecting");
    t.client.close();
  });

  it("pingIntervalMs 0 turns it off", async () => {
    const t = makeClient({ pingIntervalMs: 0 });
    const ws = await openAndSubscribe(t);
    await t.clock.advance(10 * 60_000);
    assert.equal(ws.sentOfType("ping").length, 0);
    assert.equal(t.client.state, "open");
    t.client.close();
  });
});
