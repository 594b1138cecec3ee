import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { backoffCeiling, fullJitter } from "../../dist/index.js";
import { fakeFetch, flush, makeClient, openAndSubscribe, sequenceRandom } from "../../testing/fakes.mjs";

/** The delay of the reconnect the client just scheduled. */
function lastDelay({ of, clock }) {
  const states = of("state");
  const s = states[states.length - 1];
  assert.equal(s.state, "reconnecting");
  return s.retryAt - clock.now();
}

describe("full jitter", () => {
  it("is uniformly random in [0, min(max, base*2^attempt)]", () => {
    assert.equal(fullJitter(0, 1000, 30000, () => 0), 0);
    assert.equal(fullJitter(0, 1000, 30000, () => 0.9999999), 1000);
    assert.equal(fullJitter(3, 1000, 30000, () => 0.9999999), 8000);
    assert.equal(fullJitter(3, 1000, 30000, () => 0.5), 4000);
    assert.equal(fullJitter(20, 1000, 30000, () => 0.9999999), 30000);
    for (let i = 0; i < 200; i++) {
      const d = fullJitter(2, 1000, 30000, Math.random);
      assert.ok(d >= 0 && d <= 4000 && Number.isInteger(d), `delay ${d}`);
    }
  });

  it("grows by doubling and stops at the cap, even for huge attempts", () => {
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 6].map((a) => backoffCeiling(a, 1000, 30000)),
      [1000, 2000, 4000, 8000, 16000, 30000, 30000],
    );
    assert.equal(backoffCeiling(10_000, 1000, 30000), 30000);
    assert.equal(backoffCeiling(5, 0, 30000), 0);
  });
});

describe("reconnect backoff", () => {
  it("grows per failed attempt up to maxMs", async () => {
    const t = makeClient({ random: sequenceRandom(0.9999999), fetch: fakeFetch(503) });
    const delays = [];
    for (let i = 0; i < 7; i++) {
      await flush();
      t.WS.last.fail();
      await flush();
      const d = lastDelay(t);
      delays.push(d);
      await t.clock.advance(d);
    }
    assert.deepEqual(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000]);
    assert.equal(t.WS.instances.length, 8);
    assert.deepEqual(t.of("state").map((s) => s.attempt).slice(1, 4), [1, 2, 3]);
    t.client.close();
  });

  it("honours custom baseMs and maxMs", async () => {
    const t = makeClient({ random: sequenceRandom(0.9999999), backoff: { baseMs: 100, maxMs: 350 } });
    const delays = [];
    for (let i = 0; i < 4; i++) {
      await flush();
      t.WS.last.fail();
      await flush();
      delays.push(lastDelay(t));
      await t.clock.advance(delays[i]);
    }
    assert.deepEqual(delays, [100, 200, 350, 350]);
    t.client.close();
  });

  it("resets once a connection is open and subscribed, not merely open", async () => {
    const t = makeClient({ rooms: ["global"], random: sequenceRandom(0.9999999) });
    for (let i = 0; i < 3; i++) {
      await flush();
      t.WS.last.fail();
      await flush();
      await t.clock.advance(lastDelay(t));
    }
    // Opens, but drops before answering the subscribe: still failing.
    await flush();
    t.WS.last.open();
    t.WS.last.serverClose(1006);
    await flush();
    assert.equal(lastDelay(t), 8000); // the 4th failure in a row
    await t.clock.advance(8000);
    // Open and subscribed: healthy again.
    await openAndSubscribe(t);
    assert.equal(t.client.state, "open");
    t.WS.last.serverClose(1006);
    await flush();
    assert.equal(lastDelay(t), 1000);
    t.client.close();
  });

  for (const code of [1012, 1013]) {
    it(`reconnects at once, after 0-restartJitterMs, on close code ${code}`, async () => {
      const t = makeClient({ rooms: ["global"], random: sequenceRandom(0.9999999) });
      await openAndSubscribe(t);
      t.WS.last.serverClose(code, "server draining, reconnect");
      await flush();
      const s = t.of("state").at(-1);
      assert.equal(s.closeCode, code);
      assert.equal(s.closeReason, "server draining, reconnect");
      assert.equal(lastDelay(t), 250);
      await t.clock.advance(250);
      assert.equal(t.WS.instances.length, 2);
      // The fast path costs no attempt: a failure right after starts at base.
      t.WS.last.fail();
      await flush();
      assert.equal(lastDelay(t), 1000);
      t.client.close();
    });
  }

  it("uses restartJitterMs for the fast path and random for its spread", async () => {
    const t = makeClient({ random: sequenceRandom(0.5), backoff: { restartJitterMs: 100 } });
    await openAndSubscribe(t);
    t.WS.last.serverClose(1012);
    await flush();
    assert.equal(lastDelay(t), 50);
    t.client.close();
  });

  it("backs off after other close codes", async () => {
    const t = makeClient({ random: sequenceRandom(0.9999999) });
    await openAndSubscribe(t);
    t.WS.last.serverClose(1009, "message too big");
    await flush();
    assert.equal(lastDelay(t), 1000);
    t.client.close();
  });
});
