import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { fakeFetch, flush, jwt, makeClient, sequenceRandom } from "../../testing/fakes.mjs";

const refused = { status: 401, body: { error: "unauthorized: token expired", code: "unauthorized" } };

describe("auth failures", () => {
  it("probes a refused connection over http(s) with the same token", async () => {
    const t = makeClient({ url: "wss://edge.test/api/v1/ws", token: "tok en", fetch: fakeFetch(503) });
    await flush();
    assert.equal(t.WS.last.url, "wss://edge.test/api/v1/ws?token=tok%20en");
    t.WS.last.fail();
    await flush();
    assert.equal(t.fetch.calls.length, 1);
    assert.equal(t.fetch.calls[0].url, "https://edge.test/api/v1/ws?token=tok%20en");
    t.client.close();
  });

  it("a fixed token refused with 401: unauthorized at once, no reconnect loop", async () => {
    const t = makeClient({ fetch: fakeFetch(refused) });
    await flush();
    t.WS.last.fail();
    await flush();
    assert.equal(t.client.state, "unauthorized");
    assert.deepEqual(t.of("error").map((e) => [e.code, e.error]), [["unauthorized", "unauthorized: token expired"]]);
    assert.equal(t.clock.pending, 0, "no timer: nothing will retry");
    await t.clock.advance(10 * 60_000);
    assert.equal(t.WS.instances.length, 1);
    t.client.close();
  });

  it("a provided token refused with 401: one fresh token, retried at once, then unauthorized", async () => {
    let calls = 0;
    const t = makeClient({ token: () => `token-${++calls}`, fetch: fakeFetch(refused) });
    await flush();
    assert.equal(t.WS.last.token, "token-1");
    t.WS.last.fail();
    await flush();
    assert.equal(t.WS.instances.length, 2, "retried at once, without a backoff");
    assert.equal(t.WS.last.token, "token-2");
    t.WS.last.fail();
    await flush();
    assert.equal(t.client.state, "unauthorized");
    assert.equal(calls, 2);
    assert.equal(t.of("error").filter((e) => e.code === "unauthorized").length, 1);
    await t.clock.advance(10 * 60_000);
    assert.equal(t.WS.instances.length, 2);
    assert.equal(t.clock.pending, 0);
    t.client.close();
  });

  it("a provided token refused once, then accepted: connects", async () => {
    let calls = 0;
    const t = makeClient({ token: async () => `token-${++calls}`, fetch: fakeFetch(refused) });
    await flush();
    t.WS.last.fail();
    await flush();
    t.WS.last.open();
    assert.equal(t.client.state, "open");
    assert.equal(t.WS.last.token, "token-2");
    // A later 401 (say the server restarted with new keys) gets its fresh retry again.
    t.WS.last.serverClose(1012);
    await t.clock.advance(250);
    t.WS.last.fail();
    await flush();
    assert.equal(t.WS.instances.length, 3 + 1);
    assert.equal(t.WS.last.token, "token-3");
    t.client.close();
  });

  it("503, network errors and 400 keep retrying with backoff", async () => {
    const t = makeClient({
      random: sequenceRandom(0.9999999),
      fetch: fakeFetch(503, new TypeError("fetch failed"), { status: 400, body: "Bad Request" }, 503),
    });
    for (let i = 0; i < 5; i++) {
      await flush();
      t.WS.last.fail();
      await flush();
      assert.equal(t.client.state, "reconnecting");
      await t.clock.advance(t.of("state").at(-1).retryAt - t.clock.now());
    }
    assert.equal(t.WS.instances.length, 6);
    assert.equal(t.fetch.calls.length, 5);
    assert.equal(t.of("error").length, 0);
    t.client.close();
  });

  it("a refused Origin (403) stops: state closed with error forbidden_origin", async () => {
    const t = makeClient({ fetch: fakeFetch({ status: 403, body: { error: "origin not allowed", code: "forbidden_origin" } }) });
    await flush();
    t.WS.last.fail();
    await flush();
    assert.equal(t.client.state, "closed");
    assert.deepEqual(t.of("error").map((e) => e.code), ["forbidden_origin"]);
    assert.equal(t.clock.pending, 0);
    t.client.close();
  });

  it("an expired fixed JWT is never tried", async () => {
    const clock = (await import("../../testing/fakes.mjs")).FakeClock;
    const c = new clock();
    const t = makeClient({ clock: c, token: jwt(c.now() - 1000) });
    await flush();
    assert.equal(t.WS.instances.length, 0);
    assert.equal(t.client.state, "unauthorized");
    assert.equal(t.of("error")[0].code, "unauthorized");
    assert.match(t.of("error")[0].error, /expired/);
    t.client.close();
  });

  it("an expired JWT from the provider is replaced by a fresh one before connecting", async () => {
    const { FakeClock } = await import("../../testing/fakes.mjs");
    const clock = new FakeClock();
    const tokens = [jwt(clock.now() - 5000, "old"), jwt(clock.now() + 3600_000, "fresh")];
    let calls = 0;
    const t = makeClient({ clock, token: () => tokens[Math.min(calls++, 1)] });
    await flush();
    assert.equal(t.WS.instances.length, 1);
    assert.equal(t.WS.last.token, tokens[1]);
    assert.equal(calls, 2);
    t.client.close();
  });

  it("a provider that only has expired tokens ends unauthorized without a connection attempt", async () => {
    const { FakeClock } = await import("../../testing/fakes.mjs");
    const clock = new FakeClock();
    const t = makeClient({ clock, token: () => jwt(clock.now() - 5000) });
    await flush();
    assert.equal(t.WS.instances.length, 0);
    assert.equal(t.client.state, "unauthorized");
    t.client.close();
  });

  it("connect() after unauthorized starts again, with setToken()'s new token", async () => {
    const t = makeClient({ fetch: fakeFetch(refused) });
    await flush();
    t.WS.last.fail();
    await flush();
    assert.equal(t.client.state, "unauthorized");
    t.client.setToken("better");
    t.client.connect();
    assert.equal(t.client.state, "connecting");
    await flush();
    assert.equal(t.WS.last.token, "better");
    t.WS.last.open();
    assert.equal(t.client.state, "open");
    t.client.close();
  });

  it("subscribe() rejects with NotConnectedError once the client stops trying", async () => {
    const t = makeClient({ fetch: fakeFetch(refused) });
    const pending = t.client.subscribe("global");
    await flush();
    t.WS.last.fail();
    await flush();
    await assert.rejects(pending, { name: "NotConnectedError" });
    await assert.rejects(t.client.subscribe("device:a"), { name: "NotConnectedError" });
    assert.deepEqual(t.client.rooms(), ["global", "device:a"], "kept for the next connect()");
    t.client.close();
  });
});
