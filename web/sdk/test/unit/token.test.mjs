import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { decodeJwtClaims, jwtExpiryMs } from "../../dist/index.js";
import { FakeClock, flush, jwt, makeClient, openAndSubscribe, sequenceRandom } from "../../testing/fakes.mjs";

const MIN = 60_000;

describe("JWT decoding", () => {
  it("reads exp (base64url JSON, unverified) and tolerates anything else", () => {
    const t = jwt(Date.UTC(2030, 0, 1));
    assert.equal(jwtExpiryMs(t), Date.UTC(2030, 0, 1));
    assert.equal(decodeJwtClaims(t).sub, "alice");
    const utf8 = `x.${Buffer.from(JSON.stringify({ sub: "zoë", exp: 1 })).toString("base64url")}.y`;
    assert.equal(decodeJwtClaims(utf8).sub, "zoë");
    for (const bad of ["", "opaque-token", "a.b.c", "a..c", `a.${Buffer.from("[1]").toString("base64url")}.c`]) {
      assert.equal(jwtExpiryMs(bad), undefined, bad);
    }
    assert.equal(jwtExpiryMs(`a.${Buffer.from('{"exp":"soon"}').toString("base64url")}.c`), undefined);
  });
});

describe("token refresh", () => {
  it("calls the provider refreshMarginMs before exp, without touching the open connection", async () => {
    const clock = new FakeClock();
    const issued = [];
    const provider = () => {
      const token = jwt(clock.now() + 10 * MIN);
      issued.push(token);
      return token;
    };
    const t = makeClient({ clock, token: provider, rooms: ["global"], pingIntervalMs: 0 });
    const ws = await openAndSubscribe(t);
    assert.equal(issued.length, 1);
    await t.clock.advance(9 * MIN - 1);
    assert.equal(issued.length, 1);
    await t.clock.advance(1);
    assert.equal(issued.length, 2, "refreshed 60 s before expiry");
    assert.equal(t.WS.instances.length, 1, "no reconnect");
    assert.equal(ws.closedBy, undefined);
    // The next connection uses the fresh token, without asking again.
    ws.serverClose(1012);
    await t.clock.advance(250);
    assert.equal(t.WS.last.token, issued[1]);
    assert.equal(issued.length, 2);
    // And the refresh goes on: 9 minutes after the second token.
    await t.clock.advance(9 * MIN - 250);
    assert.equal(issued.length, 3);
    t.client.close();
  });

  it("honours refreshMarginMs, and refreshes short-lived tokens at half their life", async () => {
    const clock = new FakeClock();
    let ttl = 10 * MIN;
    let calls = 0;
    const t = makeClient({
      clock,
      refreshMarginMs: 2 * MIN,
      token: () => {
        calls++;
        return jwt(clock.now() + ttl);
      },
    });
    await flush();
    ttl = 30_000; // the next tokens live shorter than the margin
    await t.clock.advance(8 * MIN);
    assert.equal(calls, 2);
    await t.clock.advance(15_000 - 1);
    assert.equal(calls, 2);
    await t.clock.advance(1);
    assert.equal(calls, 3, "half of 30 s, not in a loop");
    t.client.close();
  });

  it("retries a failing provider with backoff, reports it, and never crashes", async () => {
    const clock = new FakeClock();
    let fail = false;
    let calls = 0;
    const t = makeClient({
      clock,
      random: sequenceRandom(0.9999999),
      pingIntervalMs: 0,
      token: async () => {
        calls++;
        if (fail) throw new Error("auth backend down");
        return jwt(clock.now() + 10 * MIN);
      },
    });
    await openAndSubscribe(t);
    fail = true;
    await t.clock.advance(9 * MIN);
    assert.equal(calls, 2);
    assert.deepEqual(t.of("error").map((e) => e.code), ["token_provider"]);
    assert.match(t.of("error")[0].error, /auth backend down/);
    await t.clock.advance(1000);
    assert.equal(calls, 3);
    await t.clock.advance(2000);
    assert.equal(calls, 4);
    fail = false;
    await t.clock.advance(4000);
    assert.equal(calls, 5);
    assert.equal(t.client.state, "open");
    assert.equal(t.of("error").length, 3);
    t.client.close();
  });

  it("asks the provider before a reconnect when the cached token is due", async () => {
    const clock = new FakeClock();
    let calls = 0;
    const t = makeClient({ clock, pingIntervalMs: 0, token: () => jwt(clock.now() + 10 * MIN, `u${++calls}`) });
    await openAndSubscribe(t);
    t.client.setToken(() => {
      throw new Error("down");
    });
    // A provider that fails while nothing valid is cached: backoff, error, no crash.
    t.WS.last.serverClose(1012);
    await t.clock.advance(250);
    assert.equal(t.client.state, "reconnecting");
    assert.equal(t.of("error").at(-1).code, "token_provider");
    t.client.setToken(() => jwt(clock.now() + 10 * MIN, "again"));
    t.client.connect(); // try now
    await flush();
    assert.equal(t.WS.instances.length, 2);
    t.client.close();
  });

  it("falls back to the cached token while it is valid when the provider fails at connect", async () => {
    const clock = new FakeClock();
    let calls = 0;
    const t = makeClient({
      clock,
      pingIntervalMs: 0,
      token: () => {
        if (++calls > 1) throw new Error("down");
        return jwt(clock.now() + 10 * MIN);
      },
    });
    const ws = await openAndSubscribe(t);
    await t.clock.advance(9 * MIN + 1); // due, refresh failed
    ws.serverClose(1012);
    await t.clock.advance(250);
    assert.equal(t.WS.instances.length, 2, "connected with the still-valid token");
    t.client.close();
  });
});
