// Vite configuration of the Sensorcast dashboard.
//
// The SDK is compiled from its source (web/sdk/src), never from a build or an
// npm package: the alias below and the `paths` entry of tsconfig.json point at
// it. The build lands where the edge embeds it (services/edge/internal/dashboard/
// static/app) and the edge serves it at "/" under a strict CSP: no inline
// script or style element in index.html, only hashed files under /assets/.
// The module preload polyfill is left out: every browser that runs the
// dashboard's ES2022 supports modulepreload.
//
// `npm run dev` / `npm run preview` proxy /api (HTTP and WebSocket) to a running
// server: SENSORCAST_URL=http://127.0.0.1:8080 npm run dev.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

const sdk = fileURLToPath(new URL("../sdk/src/index.ts", import.meta.url));

const target = process.env.SENSORCAST_URL ?? "http://127.0.0.1:8080";
const proxy = { "/api": { target, ws: true, changeOrigin: true } };

export default defineConfig({
  base: "/",
  resolve: { alias: { "@sensorcast/client": sdk } },
  build: {
    outDir: "../../services/edge/internal/dashboard/static/app",
    emptyOutDir: true,
    assetsDir: "assets",
    target: "es2022",
    sourcemap: false,
    modulePreload: { polyfill: false },
    reportCompressedSize: false,
  },
  server: { proxy },
  preview: { proxy },
});
