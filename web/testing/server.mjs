// Runs the real server for the SDK's and the dashboard's tests:
// `sensorcast run` (edge, ingest, registry, embedded NATS and MQTT,
// simulated devices) on free loopback ports, and mints tokens with the
// same binary.

import { execFile, spawn } from "node:child_process";
import { createWriteStream, existsSync, readFileSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** The sensorcast binary: $SENSORCAST_BIN, or the repository's bin/sensorcast. Throws (the test fails) when it is missing. */
export function sensorcastBin() {
  const bin = process.env.SENSORCAST_BIN ? path.resolve(process.env.SENSORCAST_BIN) : path.join(repoRoot, "bin/sensorcast");
  if (!existsSync(bin)) {
    throw new Error(
      `These tests need the sensorcast binary, and there is none at ${bin}. ` +
        "Build it with make build (which embeds the dashboard), or set SENSORCAST_BIN.",
    );
  }
  return bin;
}

/**
 * The environment for the binary: without SENSORCAST_* settings of the
 * caller's shell, so that `run` and `token` agree on the development
 * secret and the flags below are all that configure the server.
 */
function cleanEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("SENSORCAST_")));
}

/** Whether port can be listened on at 127.0.0.1 (0: any port); resolves to the port, or 0 when taken. */
function tryListen(port) {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.on("error", () => resolve(0));
    srv.listen(port, "127.0.0.1", () => {
      const { port: bound } = /** @type {net.AddressInfo} */ (srv.address());
      srv.close(() => resolve(bound));
    });
  });
}

/** Where the kernel's ephemeral ports (outgoing connections' source ports) start. */
function ephemeralStart() {
  try {
    const [start] = readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8").trim().split(/\s+/).map(Number);
    if (Number.isInteger(start)) return start;
  } catch {
    // not Linux
  }
  return 32768;
}

const LOWEST_PORT = 15000;
let nextPort = Math.floor(Math.random() * 1e6);

/**
 * A TCP port on 127.0.0.1 that no one listens on, for the server to bind
 * (and bind again when it restarts). It comes from below the ephemeral
 * range: a port from that range (what listening on 0 gives) may be taken
 * by any outgoing connection as its source port before the server binds
 * it; below it, only another listener can take it.
 */
export async function freePort() {
  const span = ephemeralStart() - LOWEST_PORT;
  for (let i = 0; span > 0 && i < 64; i++) {
    const port = await tryListen(LOWEST_PORT + (nextPort++ % span));
    if (port) return port;
  }
  const port = await tryListen(0);
  if (!port) throw new Error("no free port on 127.0.0.1");
  return port;
}

/** Mints a token: `sensorcast token ARGS`. */
export const mintToken = (...args) => runBinary(["token", ...args]);

/** Runs `sensorcast ARGS` with the environment the server's tests use, extra variables added. */
function runBinary(args, env = {}) {
  return new Promise((resolve, reject) => {
    execFile(sensorcastBin(), args, { env: { ...cleanEnv(), ...env }, timeout: 10_000 }, (err, stdout, stderr) => {
      if (err) reject(new Error(`sensorcast ${args.join(" ")}: ${err.message}\n${stderr}`));
      else resolve(stdout.trim());
    });
  });
}

/** A dashboard token for alice that may watch and command everything. */
export const aliceToken = (...extra) =>
  mintToken("--sub", "alice", "--rooms", "global,device:*,group:*", "--commands", "device:*,group:*", ...extra);

const live = new Set();
// Whatever happens to the test process, no server outlives it.
process.on("exit", () => {
  for (const child of live) child.kill("SIGKILL");
});

export class Server {
  /**
   * Starts a server in a new data dir on free ports. Options: interval
   * (the simulator's, default 200ms), args (more flags), logFile (a path
   * prefix: each run's output also goes to <logFile>-<run>.log).
   */
  static async start(options = {}) {
    const bin = sensorcastBin();
    const dataDir = await mkdtemp(path.join(os.tmpdir(), "sensorcast-sdk-test-"));
    let lastErr;
    // A free port can be taken by someone else before the server binds it: try anew.
    for (let i = 0; i < 3; i++) {
      const server = new Server(bin, dataDir, { http: await freePort(), mqtt: await freePort(), grpc: await freePort() }, options);
      try {
        await server.start();
        return server;
      } catch (err) {
        lastErr = err;
        await server.kill();
      }
    }
    await rm(dataDir, { recursive: true, force: true });
    throw lastErr;
  }

  constructor(bin, dataDir, ports, options) {
    this.bin = bin;
    this.dataDir = dataDir;
    this.ports = ports;
    this.options = options;
    /** @type {import("node:child_process").ChildProcess | undefined} */
    this.child = undefined;
    /** @type {Promise<unknown> | undefined} */
    this.exited = undefined;
    /** @type {string[]} */
    this.output = [];
    this.runs = 0;
  }

  get httpUrl() {
    return `http://127.0.0.1:${this.ports.http}`;
  }

  /** The dashboard WebSocket URL. */
  get wsUrl() {
    return `ws://127.0.0.1:${this.ports.http}/api/v1/ws`;
  }

  /**
   * Runs a command line of the binary against this server's registry, e.g.
   * cli("devices", "update", "my-esp32", "--group", "simulated"), with the
   * admin token the development secret gives.
   */
  cli(...args) {
    return runBinary(args, { SENSORCAST_REGISTRY_URL: `127.0.0.1:${this.ports.grpc}` });
  }

  get deviceWsUrl() {
    return `ws://127.0.0.1:${this.ports.http}/api/v1/device/ws`;
  }

  /** The last lines the server logged, for failure messages. */
  log() {
    return this.output.join("").split("\n").slice(-40).join("\n");
  }

  /** (Re)starts the process on the same ports and data dir; resolves when /readyz is 200. */
  async start() {
    const args = [
      "run",
      "--http-addr", `127.0.0.1:${this.ports.http}`,
      "--mqtt-addr", `127.0.0.1:${this.ports.mqtt}`,
      "--grpc-addr", `127.0.0.1:${this.ports.grpc}`,
      "--data-dir", this.dataDir,
      "--interval", this.options.interval ?? "200ms",
      "--drain-period", "1s",
      "--log-level", "warn",
      ...(this.options.args ?? []),
    ];
    const child = spawn(this.bin, args, { env: cleanEnv(), stdio: ["ignore", "pipe", "pipe"] });
    this.child = child;
    this.runs++;
    live.add(child);
    const file = this.options.logFile ? createWriteStream(`${this.options.logFile}-${this.runs}.log`) : undefined;
    child.on("exit", () => file?.end());
    const keep = (chunk) => {
      file?.write(chunk);
      this.output.push(chunk.toString());
      if (this.output.length > 400) this.output.splice(0, 200);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    this.exited = new Promise((resolve) =>
      child.on("exit", (code, signal) => {
        live.delete(child);
        resolve({ code, signal });
      }),
    );
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null || child.signalCode !== null) {
        throw new Error(`sensorcast run exited before it was ready:\n${this.log()}`);
      }
      try {
        const res = await fetch(`${this.httpUrl}/readyz`);
        if (res.status === 200) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`sensorcast run not ready within 30 s:\n${this.log()}`);
      await sleep(50);
    }
  }

  /** SIGTERM (the server drains, closing sockets with 1012), SIGKILL if it has not exited within timeoutMs. */
  async stop(timeoutMs = 10_000) {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
    await this.exited;
    clearTimeout(timer);
  }

  /** SIGKILL now. */
  async kill() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    child.kill("SIGKILL");
    await this.exited;
  }

  /** Stops the server and removes its data dir (for test cleanup: never throws). */
  async dispose() {
    try {
      await this.stop(5_000);
    } finally {
      await this.kill().catch(() => undefined);
      await rm(this.dataDir, { recursive: true, force: true }).catch(() => undefined);
    }
  }
}
