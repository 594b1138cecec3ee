// A TCP proxy between a client and the server, to break the network under
// the client: cut every connection (the client sees it drop), or stall it
// (bytes stop flowing both ways, nothing is closed: a dead link that only
// a heartbeat can detect).

import net from "node:net";

export class TcpProxy {
  static async start(targetPort) {
    const proxy = new TcpProxy(targetPort);
    await new Promise((resolve) => proxy.server.listen(0, "127.0.0.1", () => resolve(undefined)));
    proxy.port = /** @type {import("node:net").AddressInfo} */ (proxy.server.address()).port;
    return proxy;
  }

  constructor(targetPort) {
    this.targetPort = targetPort;
    this.port = 0;
    this.pairs = new Set();
    this.refusing = false;
    this.accepted = 0;
    this.server = net.createServer((client) => this.accept(client));
  }

  accept(client) {
    this.accepted++;
    if (this.refusing) {
      client.destroy();
      return;
    }
    const upstream = net.connect(this.targetPort, "127.0.0.1");
    const pair = { client, upstream, stalled: false };
    this.pairs.add(pair);
    const end = () => {
      client.destroy();
      upstream.destroy();
      this.pairs.delete(pair);
    };
    client.on("data", (d) => pair.stalled || upstream.write(d));
    upstream.on("data", (d) => pair.stalled || client.write(d));
    client.on("error", end).on("close", end);
    upstream.on("error", end).on("close", end);
  }

  /** Replaces a ws://host:port URL's port with the proxy's. */
  url(wsUrl) {
    const u = new URL(wsUrl);
    u.port = String(this.port);
    return u.toString();
  }

  /** Resets every open connection. */
  cut() {
    for (const { client, upstream } of this.pairs) {
      client.resetAndDestroy?.() ?? client.destroy();
      upstream.destroy();
    }
    this.pairs.clear();
  }

  /** Stops forwarding on the open connections, closing nothing. */
  stall() {
    for (const pair of this.pairs) pair.stalled = true;
  }

  /** While true, new connections are dropped at once. */
  refuse(on) {
    this.refusing = on;
  }

  async close() {
    this.cut();
    await new Promise((resolve) => this.server.close(resolve));
  }
}
