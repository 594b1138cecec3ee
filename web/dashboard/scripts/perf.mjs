// Manual performance check of the dashboard under a large fleet (not part of
// `npm test`): starts `sensorcast run` with many simulated devices, opens the
// dashboard in Chromium, and measures frame times with requestAnimationFrame
// and the Long Tasks API while the fleet reports.
//
//   node scripts/perf.mjs [--devices 1000] [--ws-devices 2] [--interval 1s]
//                         [--seconds 20] [--mode idle|scroll|detail]
//
// SENSORCAST_BIN (default: the repository's bin/sensorcast) and CHROMIUM_BIN (default
// /usr/bin/chromium) as for the browser test. Prints one JSON line of numbers.

import { parseArgs } from "node:util";
import { chromium } from "playwright-core";
import { mintToken, Server } from "../../testing/server.mjs";

const CHROMIUM = process.env.CHROMIUM_BIN || "/usr/bin/chromium";
const { values: opt } = parseArgs({
  options: {
    devices: { type: "string", default: "1000" },
    "ws-devices": { type: "string", default: "2" },
    interval: { type: "string", default: "1s" },
    seconds: { type: "string", default: "20" },
    mode: { type: "string", default: "idle" },
  },
});

const server = await Server.start({ interval: opt.interval, args: ["--devices", opt.devices, "--ws-devices", opt["ws-devices"]] });
let browser;
try {
  const base = server.httpUrl;
  const token = await mintToken("--sub", "perf", "--commands", "device:*");
  const fleet = Number(opt.devices) + Number(opt["ws-devices"]);
  // Wait for most of the fleet: a few simulated devices may still be connecting.
  const enough = Math.floor(fleet * 0.95);

  browser = await chromium.launch({ executablePath: CHROMIUM, args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"] });
  const page = await browser.newPage({ viewport: { width: 1440, height: 900 } });
  await page.addInitScript(() => {
    window.__perf = { states: [], long: [] };
    new PerformanceObserver((l) => {
      for (const e of l.getEntries()) window.__perf.long.push(Math.round(e.duration));
    }).observe({ type: "longtask" });
    const hook = setInterval(() => {
      const c = window.__sensorcast?.client;
      if (!c) return;
      clearInterval(hook);
      c.on("state", (e) => window.__perf.states.push(`${e.state}${e.closeCode ? ` (${e.closeCode} ${e.closeReason ?? ""})` : ""}`));
    }, 5);
  });
  const t0 = Date.now();
  await page.goto(`${base}/#token=${token}`);
  await page.waitForFunction((n) => (window.__sensorcast?.store.devices.size ?? 0) >= n, enough, { timeout: 60_000, polling: 250 });
  const loadMs = Date.now() - t0;
  if (opt.mode === "detail") {
    await page.locator("[data-testid=device-tile][data-status=online]").first().click();
    await page.waitForSelector("[data-testid=charts] canvas");
  }
  await page.waitForTimeout(3000);
  const result = await page.evaluate(
    async ({ seconds, mode }) => {
      const s = window.__sensorcast;
      const frames = [];
      const long0 = window.__perf.long.length;
      const m0 = s.store.messages;
      const r0 = s.grid.stats.rendered;
      const start = performance.now();
      let last = start;
      let dir = 1;
      await new Promise((done) => {
        const tick = (now) => {
          frames.push(now - last);
          last = now;
          if (mode === "scroll") {
            window.scrollBy(0, 40 * dir);
            if (window.scrollY + innerHeight >= document.body.scrollHeight - 5) dir = -1;
            else if (window.scrollY <= 0) dir = 1;
          }
          if (now - start < seconds * 1000) requestAnimationFrame(tick);
          else done();
        };
        requestAnimationFrame(tick);
      });
      frames.shift();
      const took = (performance.now() - start) / 1000;
      const sorted = [...frames].sort((a, b) => a - b);
      const pct = (p) => +sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))].toFixed(1);
      const long = window.__perf.long.slice(long0);
      return {
        fps: +(frames.length / took).toFixed(1),
        frameMs: { p50: pct(0.5), p95: pct(0.95), p99: pct(0.99), max: +sorted[sorted.length - 1].toFixed(1) },
        framesOver50ms: frames.filter((f) => f > 50).length,
        longTasks: long.length,
        longestTaskMs: long.length ? Math.max(...long) : 0,
        messagesPerSecond: Math.round((s.store.messages - m0) / took),
        tilesRenderedPerSecond: Math.round((s.grid.stats.rendered - r0) / took),
        devicesKnown: s.store.devices.size,
        tilesInDom: document.querySelectorAll("[data-testid=device-tile]").length,
        heapMB: performance.memory ? +(performance.memory.usedJSHeapSize / 1048576).toFixed(1) : null,
        connection: window.__perf.states,
      };
    },
    { seconds: Number(opt.seconds), mode: opt.mode },
  );
  console.log(JSON.stringify({ devices: fleet, interval: opt.interval, mode: opt.mode, seconds: Number(opt.seconds), loadToAllDevicesMs: loadMs, ...result }));
} finally {
  await browser?.close();
  await server.dispose();
}
