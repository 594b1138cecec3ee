import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConnectionLostError, NotConnectedError } from "../../dist/index.js";
import { FakeClock, fakeFetch, flush, jwt, makeClient, openAndSubscribe } from "../../testing/fakes.mjs";

describe("close()", () => {
  it("clears every timer and pending thing, closes the socket, and is final", async () => {
    const clock = new FakeClock();
    const t = makeClient({ clock, rooms: ["device:a", "device:b"], token: () => jwt(clock.now() + 3600_000) });
    const ws = await openAndSubscribe(t);
    // Something of everything: an unavailable retry, requests, a command,
    // a waiting subscribe, the heartbeat, the token refresh.
    const sub = t.client.subscribe("device:c");
    ws.acceptSubscribe(ws.lastSent("subscribe"), { rejected: [{ room: "device:c", code: "unavailable", reason: "" }] });
    const ping = t.client.ping();
    const presence = t.client.presence("global");
    const call = t.client.command({ deviceId: "sim-001", name: "blink" });
    await flush();
    assert.ok(t.clock.pending >= 6, `timers before close: ${t.clock.pending}`);
    const states = [];
    t.client.on("state", (s) => states.push(s));
    t.client.close();
    assert.equal(t.clock.pending, 0, "no timer left: a Node process can exit");
    assert.equal(t.client.state, "closed");
    assert.deepEqual(states.map((s) => [s.state, s.previous, s.closeCode]), [["closed", "open", 1000]]);
    assert.deepEqual(ws.closedBy, { code: 1000, reason: "client closed" });
    await assert.rejects(sub, NotConnectedError);
    await assert.rejects(ping, ConnectionLostError);
    await assert.rejects(presence, ConnectionLostError);
    await assert.rejects(call.done, ConnectionLostError);
    assert.throws(() => t.client.connect(), /final/);
    await assert.rejects(t.client.subscribe("x"), NotConnectedError);
    ws.telemetry("device:a", 1); // a stale socket cannot reach anyone
    await t.clock.advance(3600_000);
    assert.equal(t.WS.instances.length, 1);
    t.client.close(); // twice is fine
  });

  it("while waiting to reconnect", async () => {
    const t = makeClient();
    await flush();
    t.WS.last.fail();
    await flush();
    assert.equal(t.client.state, "reconnecting");
    t.client.close();
    assert.equal(t.clock.pending, 0);
    await t.clock.advance(60_000);
    assert.equal(t.WS.instances.length, 1);
  });

  it("while a refused connection is being probed", async () => {
    /** @type {(res: any) => void} */
    let answer = () => undefined;
    const fetch = async () => new Promise((resolve) => (answer = resolve));
    const t = makeClient({ fetch });
    await flush();
    t.WS.last.fail();
    await flush();
    assert.equal(t.clock.pending, 1, "the probe's timeout");
    t.client.close();
    assert.equal(t.clock.pending, 0);
    answer({ status: 503, text: async () => "" });
    await flush();
    assert.equal(t.client.state, "closed");
    assert.equal(t.clock.pending, 0);
  });

  it("while the socket is still connecting (and a connect timeout is armed)", async () => {
    const t = makeClient({ fetch: fakeFetch(503) });
    await flush();
    assert.equal(t.clock.pending, 1, "the connect timeout");
    t.client.close();
    assert.equal(t.clock.pending, 0);
    assert.ok(t.WS.last.closedBy);
  });
});

describe("connect timeout", () => {
  it("a socket that does not open within connectTimeoutMs is a failed attempt", async () => {
    const t = makeClient({ connectTimeoutMs: 5000, fetch: fakeFetch(503) });
    await flush();
    await t.clock.advance(5000);
    assert.ok(t.WS.last.closedBy);
    assert.equal(t.client.state, "reconnecting");
    assert.equal(t.fetch.calls.length, 1);
    t.client.close();
  });
});

describe("listeners that close the client", () => {
  for (const when of ["open", "reconnecting", "connecting"]) {
    it(`leave no timer when they close it on "${when}"`, async () => {
      const t = makeClient({ autoConnect: false, rooms: ["global"] });
      t.client.on("state", (s) => s.state === when && t.client.close());
      t.client.connect();
      await flush();
      if (when !== "connecting") {
        if (when === "open") t.WS.last.open();
        else t.WS.last.fail();
        await flush();
      }
      assert.equal(t.client.state, "closed");
      assert.equal(t.clock.pending, 0);
      await t.clock.advance(60_000);
      assert.ok(t.WS.instances.length <= 1);
    });
  }
});
