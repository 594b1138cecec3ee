// The package as npm would publish it: `npm pack`, installed into an empty
// project, must import from Node and typecheck a TypeScript consumer with
// only what the tarball holds (no path into this repository).
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { after, before, test } from "node:test";
import { fileURLToPath } from "node:url";

const sdk = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = join(sdk, "node_modules", "typescript", "bin", "tsc");

let work;
let packed;
before(() => {
  work = mkdtempSync(join(tmpdir(), "sensorcast-sdk-pack-"));
  // --ignore-scripts: the test run has just built dist/ (prepack would build again).
  const out = execFileSync("npm", ["pack", "--json", "--ignore-scripts", "--pack-destination", work], {
    cwd: sdk,
    encoding: "utf8",
  });
  [packed] = JSON.parse(out);
  const project = join(work, "app");
  const target = join(project, "node_modules", "@sensorcast", "client");
  mkdirSync(target, { recursive: true });
  execFileSync("tar", ["-xzf", join(work, packed.filename), "-C", target, "--strip-components=1"]);
  writeFileSync(join(project, "package.json"), JSON.stringify({ name: "app", private: true, type: "module" }));
});

after(() => rmSync(work, { recursive: true, force: true }));

test("the tarball holds the build, the types, the sources for source maps and the README, and no tests", () => {
  const files = packed.files.map((f) => f.path);
  for (const want of ["package.json", "README.md", "dist/index.js", "dist/index.d.ts", "dist/client.js", "src/client.ts"]) {
    assert.ok(files.includes(want), `${want} is missing from ${packed.filename}: ${files.join(", ")}`);
  }
  const stray = files.filter((f) => f.startsWith("test/") || f.startsWith("testing/") || f.includes("node_modules"));
  assert.deepEqual(stray, [], "files that do not belong in the package");
  assert.equal(packed.name, "@sensorcast/client");
});

test("an installed copy imports from Node with every runtime export", () => {
  const app = join(work, "app");
  writeFileSync(
    join(app, "main.mjs"),
    `import * as sdk from "@sensorcast/client";
console.log(JSON.stringify(Object.keys(sdk).sort()));
const client = new sdk.SensorcastClient({ url: "ws://127.0.0.1:1/api/v1/ws", token: "t", autoConnect: false });
console.log(client.state);`,
  );
  // Node 20 has a global WebSocket only behind a flag (the README says so).
  const flags = Number(process.versions.node.split(".")[0]) < 22 ? ["--experimental-websocket"] : [];
  const [names, state] = execFileSync(process.execPath, [...flags, "main.mjs"], { cwd: app, encoding: "utf8" }).trim().split("\n");
  assert.deepEqual(JSON.parse(names), [
    "ConnectionLostError",
    "NotConnectedError",
    "RequestTimeoutError",
    "SensorcastClient",
    "ServerError",
    "backoffCeiling",
    "decodeJwtClaims",
    "fullJitter",
    "isFinalStatus",
    "jwtExpiryMs",
  ]);
  assert.equal(state, "closed");
});

test("a TypeScript consumer typechecks against the installed declarations", () => {
  const app = join(work, "app");
  writeFileSync(
    join(app, "consumer.ts"),
    `import { SensorcastClient, type RoomMessage, type Telemetry, type CommandStatus } from "@sensorcast/client";
const client = new SensorcastClient({ url: "wss://example.com/api/v1/ws", token: async () => "t", rooms: ["global"], autoConnect: false });
client.on("telemetry", (m: RoomMessage<Telemetry>) => console.log(m.room, m.seq, m.payload.device_id));
const status: CommandStatus = "succeeded";
export { client, status };`,
  );
  writeFileSync(
    join(app, "tsconfig.json"),
    JSON.stringify({
      compilerOptions: { module: "nodenext", moduleResolution: "nodenext", target: "es2022", strict: true, noEmit: true, lib: ["es2022", "dom"], types: [] },
      files: ["consumer.ts"],
    }),
  );
  try {
    execFileSync(process.execPath, [tsc, "-p", "tsconfig.json"], { cwd: app, encoding: "utf8" });
  } catch (err) {
    assert.fail(`tsc refused the consumer:\n${err.stdout}${err.stderr}`);
  }
});
