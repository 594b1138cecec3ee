// End-to-end test of the dashboard in a real browser against the real server.
//
// It starts `sensorcast run` (SENSORCAST_BIN, default ../../bin/sensorcast: a
// build that embeds this dashboard), opens http://127.0.0.1:<port>/#token=...
// in Debian's Chromium (CHROMIUM_BIN, default /usr/bin/chromium) through
// playwright-core, and checks what a person would: sign-in, live tiles,
// search and group filter, a command, presence, the alert feed, and the
// connection indicator across a server restart. Screenshots of every step go
// to ARTIFACTS_DIR (default: the repository's bin/artifacts/dashboard).
//
// A missing server binary or browser is a failure, never a skip.

import assert from "node:assert/strict";
import { existsSync, mkdirSync, readdirSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { test } from "node:test";
import { fileURLToPath } from "node:url";
import { TestDevice } from "../../testing/device.mjs";
import { mintToken, sensorcastBin, Server } from "../../testing/server.mjs";

const here = path.dirname(fileURLToPath(import.meta.url));
const CHROMIUM_BIN = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const ARTIFACTS_DIR = path.resolve(here, "..", process.env.ARTIFACTS_DIR || "../../bin/artifacts/dashboard");
const SIM_DEVICES = 22; // sim-001..sim-020 over MQTT, sim-ws-001/002 over WebSocket

test("the dashboard signs in, shows live devices, commands one and survives a server restart", { timeout: 150_000 }, async (t) => {
  // Prerequisites: fail loudly, never skip.
  const SERVER_BIN = sensorcastBin();
  assert.ok(existsSync(CHROMIUM_BIN), `Chromium not found at ${CHROMIUM_BIN}: apt-get install -y chromium, or set CHROMIUM_BIN`);
  let chromium;
  try {
    ({ chromium } = await import("playwright-core"));
  } catch (e) {
    assert.fail(`playwright-core is not installed (run npm ci in web/dashboard): ${e.message}`);
  }

  mkdirSync(ARTIFACTS_DIR, { recursive: true });
  // This run's screenshots and logs only: drop an earlier run's.
  for (const f of readdirSync(ARTIFACTS_DIR)) {
    if (/^(\d\d-.+\.png|server-\d+\.log)$/.test(f)) rmSync(path.join(ARTIFACTS_DIR, f));
  }
  const started = Date.now();
  const tmp = await mkdtemp(path.join(os.tmpdir(), "sensorcast-dashboard-test-"));
  let server = null;
  let door = null;
  let context = null;
  let page = null;
  let shot = 0;
  const screenshots = [];
  const screenshot = async (name) => {
    const file = path.join(ARTIFACTS_DIR, `${String(++shot).padStart(2, "0")}-${name}.png`);
    await page.screenshot({ path: file, fullPage: true });
    screenshots.push(file);
    console.log(`screenshot: ${file}`);
  };
  const step = (name) => console.log(`[${((Date.now() - started) / 1000).toFixed(1)} s] ${name}`);
  const pageErrors = [];

  t.after(async () => {
    door?.close();
    await context?.close().catch(() => {});
    await server?.dispose();
    await rm(tmp, { recursive: true, force: true }).catch(() => {});
  });

  try {
    step(`starting ${SERVER_BIN}`);
    server = await Server.start({ interval: "1s", logFile: path.join(ARTIFACTS_DIR, "server") });
    const token = await mintToken("--sub", "dev", "--rooms", "global,device:*,group:*", "--commands", "device:*,group:*");
    assert.match(token, /^[\w-]+\.[\w-]+\.[\w-]+$/, "sensorcast token printed no JWT");

    context = await chromium.launchPersistentContext(path.join(tmp, "chromium-profile"), {
      executablePath: CHROMIUM_BIN,
      headless: true,
      args: [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
      ],
      viewport: { width: 1440, height: 900 },
    });
    page = context.pages()[0] ?? (await context.newPage());
    // Uncaught exceptions only: while the server is down the browser itself
    // logs failed connections to the console, which is expected.
    page.on("pageerror", (e) => pageErrors.push(e.message));

    const connState = () => page.getAttribute("[data-testid=connection-state]", "data-state");
    const waitState = (state, timeout) =>
      page.waitForFunction((s) => document.querySelector("[data-testid=connection-state]")?.getAttribute("data-state") === s, state, { timeout });
    const tileSel = (id) => `[data-testid=device-tile][data-device-id="${id}"]`;
    const temperature = (id) => page.getAttribute(`${tileSel(id)} [data-testid=field-temperature]`, "data-value");
    const tileIds = () => page.$$eval("[data-testid=device-tile]", (els) => els.map((e) => e.getAttribute("data-device-id")));
    const waitTemperatureChange = async (id, from, timeout) => {
      await page.waitForFunction(
        ({ sel, from }) => {
          const v = document.querySelector(sel)?.getAttribute("data-value");
          return v != null && v !== from;
        },
        { sel: `${tileSel(id)} [data-testid=field-temperature]`, from },
        { timeout, polling: 100 },
      );
      return temperature(id);
    };

    // 1. Sign in from the link `make run` prints.
    step("open the page with #token=");
    await page.goto(`${server.httpUrl}/#token=${token}`);
    const app = await page.waitForSelector("#app, body", { timeout: 10_000 }).then(() => page.$("#app"));
    assert.ok(
      app,
      `${SERVER_BIN} does not serve the dashboard at / (a build without it: run make web, then make build): ${(await page.textContent("body"))?.trim().slice(0, 200)}`,
    );
    await waitState("open", 15_000);
    assert.ok(!page.url().includes(token), "the token must be removed from the address bar");
    assert.equal(await page.evaluate(() => sessionStorage.getItem("sensorcast.token")), token, "the token is kept in sessionStorage");
    assert.equal((await page.textContent("[data-testid=user-sub]"))?.trim(), "dev", "the header shows the token's user");
    assert.match((await page.textContent("[data-testid=token-expiry]")) ?? "", /expires in/);
    await screenshot("signed-in");

    // For the alert feed later: my-esp32 joins the group of the demo rule
    // "door left open" (door_open = 1 held for 10 s) and leaves its door open.
    await server.cli("devices", "update", "my-esp32", "--group", "simulated");
    door = await TestDevice.connect(server, "my-esp32");
    const doorOpen = setInterval(() => door.publish({ door_open: true }), 1000);
    t.after(() => clearInterval(doorOpen));

    // 2. Tiles appear with live values.
    step("device tiles");
    await page.waitForSelector(`${tileSel("sim-001")} [data-testid=field-temperature]`, { timeout: 15_000 });
    await page.waitForFunction((n) => document.querySelectorAll("[data-testid=device-tile]").length >= n, SIM_DEVICES, { timeout: 15_000 });
    const allIds = await tileIds();
    for (const id of ["sim-001", "sim-020", "sim-ws-001", "sim-ws-002"]) assert.ok(allIds.includes(id), `a tile for ${id}`);
    assert.equal(await page.getAttribute(`${tileSel("sim-001")} [data-testid=status-badge]`, "data-status"), "online");
    const t0 = await temperature("sim-001");
    assert.ok(t0 !== null && Number.isFinite(Number(t0)), `sim-001 shows a numeric temperature (${t0})`);
    const t1 = await waitTemperatureChange("sim-001", t0, 15_000);
    step(`sim-001 temperature ${t0} -> ${t1}`);
    await screenshot("live-values");

    // 3. Presence: this page at least.
    step("presence");
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=presence-count]")?.getAttribute("data-count")) >= 1, null, { timeout: 20_000 });
    const watching = Number(await page.getAttribute("[data-testid=presence-count]", "data-count"));
    assert.ok(watching >= 1, `presence shows ${watching} watching`);
    // Another person opens the dashboard: the first page hears of it from the
    // server (presence_join), long before its own once-a-minute refresh.
    const presenceCount = () => page.getAttribute("[data-testid=presence-count]", "data-count").then(Number);
    const other = await context.newPage();
    await other.goto(`${server.httpUrl}/#token=${await mintToken("--sub", "viewer", "--rooms", "global")}`);
    await page.waitForFunction((n) => Number(document.querySelector("[data-testid=presence-count]")?.getAttribute("data-count")) === n, watching + 1, { timeout: 10_000 });
    step(`presence ${watching} -> ${await presenceCount()} when another user opened the dashboard`);
    await other.close();
    await page.waitForFunction((n) => Number(document.querySelector("[data-testid=presence-count]")?.getAttribute("data-count")) === n, watching, { timeout: 10_000 });

    // 4. Search narrows the list (typing is debounced).
    step("search");
    await page.fill("[data-testid=search]", "sim-00");
    await page.waitForFunction(
      () => {
        const ids = [...document.querySelectorAll("[data-testid=device-tile]")].map((e) => e.getAttribute("data-device-id"));
        return ids.length === 9 && ids.every((id) => id.startsWith("sim-00"));
      },
      null,
      { timeout: 10_000 },
    );
    await screenshot("search");

    // 5. The group filter narrows it to the group's members (with the search: the two WebSocket devices).
    step("group filter");
    await page.fill("[data-testid=search]", "");
    await page.waitForFunction((n) => document.querySelectorAll("[data-testid=device-tile]").length >= n, SIM_DEVICES, { timeout: 10_000 });
    const before = (await tileIds()).length;
    const groupValues = await page.$$eval("[data-testid=group-filter] option", (os) => os.map((o) => o.value));
    assert.ok(groupValues.includes("simulated"), `the group filter offers the group "simulated" (has ${JSON.stringify(groupValues)})`);
    const members = await fetch(`${server.httpUrl}/api/v1/devices?group=simulated&limit=1000`, { headers: { Authorization: `Bearer ${token}` } }).then((r) => r.json());
    const memberIds = members.devices.map((d) => d.id).sort();
    await page.selectOption("[data-testid=group-filter]", "simulated");
    await page.waitForFunction(
      (want) => {
        const ids = [...document.querySelectorAll("[data-testid=device-tile]")].map((e) => e.getAttribute("data-device-id")).sort();
        return JSON.stringify(ids) === JSON.stringify(want);
      },
      memberIds,
      { timeout: 10_000 },
    );
    assert.ok(memberIds.length <= before, "the group has no more devices than the whole list");
    await page.fill("[data-testid=search]", "ws");
    await page.waitForFunction(
      () => {
        const ids = [...document.querySelectorAll("[data-testid=device-tile]")].map((e) => e.getAttribute("data-device-id")).sort();
        return JSON.stringify(ids) === JSON.stringify(["sim-ws-001", "sim-ws-002"]);
      },
      null,
      { timeout: 10_000 },
    );
    await screenshot("group-filter");
    await page.fill("[data-testid=search]", "");
    await page.selectOption("[data-testid=group-filter]", "");
    await page.waitForSelector(tileSel("sim-001"), { timeout: 10_000 });

    // 6. Blink sim-001 from its detail panel; the status goes live to succeeded.
    step("command blink on sim-001");
    await page.click(tileSel("sim-001"));
    await page.waitForSelector('[data-testid=device-detail][data-device-id="sim-001"]', { state: "visible", timeout: 5_000 });
    await page.waitForSelector("[data-testid=chart-temperature] canvas", { timeout: 5_000 });
    await page.click("[data-testid=command-blink]");
    const status = '[data-testid=command-entry][data-command=blink] [data-testid=command-status]';
    await page.waitForSelector(status, { timeout: 5_000 });
    await page.waitForFunction(
      (sel) => ["succeeded", "failed", "timeout", "rejected", "error"].includes(document.querySelector(sel)?.getAttribute("data-status") ?? ""),
      status,
      { timeout: 20_000 },
    );
    const final = await page.getAttribute(status, "data-status");
    const detail = await page.textContent("[data-testid=command-entry]");
    assert.equal(final, "succeeded", `blink ended ${final}: ${detail}`);
    await screenshot("command-succeeded");
    await page.keyboard.press("Escape");
    await page.waitForSelector("[data-testid=device-detail]", { state: "hidden", timeout: 5_000 });

    // 7. The alert feed: my-esp32's door has been open for more than 10 s.
    step("alert feed");
    const alertItem = (state) => `[data-testid=alert-item][data-device-id="my-esp32"][data-state=${state}]`;
    await page.waitForSelector(alertItem("firing"), { timeout: 30_000 });
    assert.match((await page.textContent(alertItem("firing"))) ?? "", /door left open/);
    clearInterval(doorOpen);
    door.publish({ door_open: false });
    await page.waitForSelector(alertItem("resolved"), { timeout: 15_000 });
    await screenshot("alerts");
    door.close();

    // 8. The server goes away: the indicator leaves "open" and counts down to the next attempt.
    step("SIGTERM the server");
    const lastTemp = await temperature("sim-001");
    await server.stop();
    await page.waitForFunction(
      () => {
        const el = document.querySelector("[data-testid=connection-state]");
        return el?.getAttribute("data-state") === "reconnecting" && /Reconnecting in \d+ s/.test(el.textContent ?? "");
      },
      null,
      { timeout: 15_000, polling: 50 },
    );
    const lastClose = (await page.textContent("[data-testid=last-close]")) ?? "";
    step(`indicator: "${await page.textContent("[data-testid=connection-state]")}", ${lastClose}`);
    assert.match(lastClose, /1012/, "the drain closes the connection with 1012 (service restart)");
    await screenshot("reconnecting");
    assert.notEqual(await connState(), "open");

    // 9. Back on the same ports and data dir: open again, and values move again.
    step("restart the server");
    await server.start();
    await waitState("open", 45_000);
    const t2 = await waitTemperatureChange("sim-001", lastTemp, 20_000);
    step(`sim-001 temperature after the restart ${lastTemp} -> ${t2}`);
    await page.waitForFunction(() => Number(document.querySelector("[data-testid=presence-count]")?.getAttribute("data-count")) >= 1, null, { timeout: 20_000 });
    await screenshot("reconnected");

    assert.deepEqual(pageErrors, [], "no script errors on the page");
    step(`done in ${((Date.now() - started) / 1000).toFixed(1)} s; screenshots:\n  ${screenshots.join("\n  ")}`);
  } catch (err) {
    if (page) await screenshot("failure").catch(() => {});
    if (pageErrors.length) console.log(`page errors:\n${pageErrors.join("\n")}`);
    if (server) console.log(`server logs: ${ARTIFACTS_DIR}/server-*.log\n${server.log()}`);
    throw err;
  }
});
