// Polling helpers for the integration tests (real time, bounded).

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Waits until check() returns a truthy value (returned), polling every 20 ms; fails after timeoutMs.
 * @template T
 * @param {() => T | Promise<T>} check
 * @param {{ timeoutMs?: number, what?: string | (() => string) }} [opts]
 * @returns {Promise<T>}
 */
export async function waitFor(check, { timeoutMs = 15_000, what = "condition" } = {}) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${typeof what === "function" ? what() : what}`);
    }
    await sleep(20);
  }
}

/**
 * Resolves with the next event of a client, or fails after timeoutMs.
 * @template {keyof import("../dist/index.js").ClientEvents} K
 * @param {import("../dist/index.js").SensorcastClient} client
 * @param {K} name
 * @param {(e: import("../dist/index.js").ClientEvents[K]) => boolean} [predicate]
 * @param {number} [timeoutMs]
 * @returns {Promise<import("../dist/index.js").ClientEvents[K]>}
 */
export function nextEvent(client, name, predicate = () => true, timeoutMs = 15_000) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      off();
      reject(new Error(`no ${name} event within ${timeoutMs} ms`));
    }, timeoutMs);
    const off = client.on(name, (e) => {
      if (!predicate(e)) return;
      clearTimeout(timer);
      off();
      resolve(e);
    });
  });
}
