import { Timer } from "./clock.js";
import type { Clock, WebSocketConstructor, WebSocketLike } from "./types.js";

/** Close code for "no close frame": the connection failed or was cut. */
export const CLOSE_ABNORMAL = 1006;

export interface ConnectionEnd {
  code: number;
  reason: string;
  /** Whether the socket had opened (false: the attempt failed before the upgrade). */
  opened: boolean;
}

export interface ConnectionHandlers {
  onOpen(): void;
  onFrame(data: unknown): void;
  onEnd(end: ConnectionEnd): void;
}

/**
 * One WebSocket, with the differences between implementations ironed out:
 * `onEnd` is called exactly once, whether the socket closed, failed before
 * opening (Node's WebSocket then fires `error` and no `close`), did not open
 * in time, or was closed by us; after `close()` no handler runs at all, so
 * a stale socket can never disturb the client's next connection.
 */
export class Connection {
  private opened = false;
  private ended = false;
  private readonly ws: WebSocketLike;
  private readonly connectTimer: Timer;

  constructor(
    WebSocketImpl: WebSocketConstructor,
    url: string,
    clock: Clock,
    connectTimeoutMs: number,
    private readonly handlers: ConnectionHandlers,
  ) {
    this.connectTimer = new Timer(clock);
    this.ws = new WebSocketImpl(url);
    this.ws.onopen = () => {
      if (this.ended) return;
      this.opened = true;
      this.connectTimer.stop();
      this.handlers.onOpen();
    };
    this.ws.onmessage = (ev: { data?: unknown }) => {
      if (!this.ended) this.handlers.onFrame(ev?.data);
    };
    this.ws.onclose = (ev: { code?: number; reason?: string }) => {
      this.end(typeof ev?.code === "number" ? ev.code : CLOSE_ABNORMAL, typeof ev?.reason === "string" ? ev.reason : "");
    };
    this.ws.onerror = () => {
      // Before the upgrade an error is the end of the attempt; after it, a
      // close event follows with the real code.
      if (!this.opened) this.abort(CLOSE_ABNORMAL, "connection failed");
    };
    if (connectTimeoutMs > 0) {
      this.connectTimer.start(connectTimeoutMs, () => this.abort(CLOSE_ABNORMAL, "connect timeout"));
    }
  }

  get isOpen(): boolean {
    return this.opened && !this.ended;
  }

  /** Sends a text frame; false when the socket is not open. */
  send(text: string): boolean {
    if (!this.isOpen) return false;
    try {
      this.ws.send(text);
      return true;
    } catch {
      return false;
    }
  }

  /** Closes the socket on our side; no handler runs afterwards. */
  close(code = 1000, reason = ""): void {
    if (this.ended) return;
    this.ended = true;
    this.detach();
    this.closeSocket(code, reason);
  }

  /** Gives up on the socket and reports the end as if it had closed with `code`. */
  abort(code: number, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.detach();
    this.closeSocket(4000, reason);
    this.handlers.onEnd({ code, reason, opened: this.opened });
  }

  private end(code: number, reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.detach();
    this.handlers.onEnd({ code, reason, opened: this.opened });
  }

  private detach(): void {
    this.connectTimer.stop();
    this.ws.onopen = this.ws.onmessage = this.ws.onclose = this.ws.onerror = null;
  }

  private closeSocket(code: number, reason: string): void {
    try {
      // Browsers accept only 1000 and 3000-4999 from applications.
      this.ws.close(code === 1000 || (code >= 3000 && code <= 4999) ? code : 1000, reason.slice(0, 120));
    } catch {
      // Already closing, or a CONNECTING socket that refuses: it is dropped either way.
    }
  }
}
