import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { ConnectionLostError, NotConnectedError, RequestTimeoutError } from "../../dist/index.js";
import { flush, makeClient, openAndSubscribe } from "../../testing/fakes.mjs";

const result = (req, status, extra = {}) => ({ command_id: "c-1", device_id: req.payload.device_id, status, ...extra });

describe("commands", () => {
  it("streams every status in order; done resolves with the final one", async () => {
    const t = makeClient({ pingIntervalMs: 0 });
    const ws = await openAndSubscribe(t);
    const call = t.client.command({
      deviceId: "sim-001",
      name: "blink",
      params: { times: 3 },
      timeoutMs: 5000,
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    });
    const req = ws.lastSent("command");
    assert.deepEqual(req, {
      type: "command",
      request_id: call.requestId,
      payload: { device_id: "sim-001", name: "blink", params: { times: 3 }, timeout_ms: 5000 },
      traceparent: "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
    });
    const early = [];
    call.onResult((r) => early.push(r.status));
    const iterated = (async () => {
      const out = [];
      for await (const r of call) out.push(r.status);
      return out;
    })();
    ws.reply(req, "command_result", result(req, "accepted"));
    ws.reply(req, "command_result", result(req, "delivered"));
    ws.reply(req, "command_result", result(req, "delivered")); // a duplicate
    ws.reply(req, "command_result", result(req, "succeeded", { result: { blinked: 3 } }));
    ws.reply(req, "command_result", result(req, "failed")); // after the final one
    const done = await call.done;
    assert.deepEqual(done, { command_id: "c-1", device_id: "sim-001", status: "succeeded", result: { blinked: 3 } });
    assert.deepEqual(early, ["accepted", "delivered", "succeeded"]);
    assert.deepEqual(await iterated, ["accepted", "delivered", "succeeded"]);
    const late = [];
    call.onResult((r) => late.push(r.status));
    assert.deepEqual(late, ["accepted", "delivered", "succeeded"], "late listeners get what came before");
    const again = [];
    for await (const r of call) again.push(r.status);
    assert.deepEqual(again, ["accepted", "delivered", "succeeded"]);
    assert.equal(t.clock.pending, 0, "the command's deadline is gone");
    t.client.close();
  });

  it("an error reply resolves done as rejected with {code, reason}", async () => {
    const t = makeClient({ pingIntervalMs: 0 });
    const ws = await openAndSubscribe(t);
    const call = t.client.command({ deviceId: "bad id", name: "blink" });
    ws.reply(ws.lastSent("command"), "error", { code: "invalid_payload", error: '"device_id" must be...' });
    assert.deepEqual(await call.done, { device_id: "bad id", status: "rejected", result: { code: "invalid_payload", reason: '"device_id" must be...' } });
    assert.equal(t.of("error").length, 0);
    t.client.close();
  });

  it("a refusal without command_id is a rejected status", async () => {
    const t = makeClient({ pingIntervalMs: 0 });
    const ws = await openAndSubscribe(t);
    const call = t.client.command({ deviceId: "sim-001", name: "blink" });
    ws.reply(ws.lastSent("command"), "command_result", { device_id: "sim-001", status: "rejected", result: { reason: "the token does not grant control of this device" } });
    const r = await call.done;
    assert.equal(r.status, "rejected");
    assert.equal(r.command_id, undefined);
    t.client.close();
  });

  it("sent while disconnected: done rejects with NotConnectedError, and so does iterating", async () => {
    const t = makeClient({ autoConnect: false });
    const call = t.client.command({ deviceId: "sim-001", name: "blink" });
    await assert.rejects(call.done, NotConnectedError);
    await assert.rejects(async () => {
      for await (const _ of call);
    }, NotConnectedError);
    t.client.close();
  });

  it("done rejects with ConnectionLostError when the connection drops before the final status", async () => {
    const t = makeClient({ pingIntervalMs: 0 });
    const ws = await openAndSubscribe(t);
    const call = t.client.command({ deviceId: "sim-001", name: "blink" });
    const seen = [];
    call.onResult((r) => seen.push(r.status));
    ws.reply(ws.lastSent("command"), "command_result", result(ws.lastSent("command"), "accepted"));
    ws.serverClose(1012);
    await assert.rejects(call.done, ConnectionLostError);
    assert.deepEqual(seen, ["accepted"]);
    // A reply on a new connection cannot reach it.
    await t.clock.advance(250);
    await openAndSubscribe(t);
    assert.equal(t.of("error").length, 0);
    t.client.close();
  });

  it("gives up on a command whose final status never comes (timeout + requestTimeoutMs)", async () => {
    const t = makeClient({ pingIntervalMs: 0, requestTimeoutMs: 1000 });
    await openAndSubscribe(t);
    const call = t.client.command({ deviceId: "sim-001", name: "blink", timeoutMs: 2000 });
    const rejected = assert.rejects(call.done, RequestTimeoutError);
    await t.clock.advance(3000);
    await rejected;
    assert.equal(t.clock.pending, 0);
    t.client.close();
  });

  it("an unhandled done never surfaces as an unhandled rejection", async () => {
    const t = makeClient({ autoConnect: false });
    t.client.command({ deviceId: "sim-001", name: "blink" }); // fire and forget
    await flush();
    t.client.close();
  });
});
