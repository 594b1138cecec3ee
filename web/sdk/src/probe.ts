import { Timer } from "./clock.js";
import type { Clock, FetchLike } from "./types.js";

// Why did a connection fail before it opened? The WebSocket API does not
// say: the server refuses bad tokens and origins with a plain HTTP answer
// before the upgrade (docs/protocol.md 2.1), which scripts cannot see. A
// plain GET of the same URL, with the same token, gets the same answer.

export type ProbeOutcome =
  /** 401: the token is refused. */
  | { kind: "unauthorized"; message: string }
  /** 403: this page's Origin is not allowed; retrying cannot help. */
  | { kind: "forbidden"; code: string; message: string }
  /** Anything else (503 draining, a 400 meaning the token is fine, a network error): retry with backoff. */
  | { kind: "retry"; status?: number; message: string };

/** The http(s) URL of a ws(s) URL. */
export function httpUrlOf(wsUrl: string): string {
  return wsUrl.replace(/^ws(s?):/i, "http$1:");
}

async function readError(res: { text(): Promise<string> }): Promise<{ code?: string; error?: string }> {
  try {
    const body: unknown = JSON.parse(await res.text());
    if (body && typeof body === "object") {
      const { code, error } = body as Record<string, unknown>;
      return { code: typeof code === "string" ? code : undefined, error: typeof error === "string" ? error : undefined };
    }
  } catch {
    // not JSON: a proxy's page, say
  }
  return {};
}

/**
 * Probes wsUrl over http(s). `cancel()` of the returned handle ends it at
 * once (the client is closing): its timer and request go with it.
 */
export function probe(
  fetchImpl: FetchLike,
  wsUrl: string,
  clock: Clock,
  timeoutMs: number,
): { result: Promise<ProbeOutcome>; cancel(): void } {
  const abort = typeof AbortController === "function" ? new AbortController() : undefined;
  const timer = new Timer(clock);
  let stop!: (reason: string) => void;
  const stopped = new Promise<never>((_, reject) => {
    stop = (reason) => {
      timer.stop();
      abort?.abort();
      reject(new Error(reason));
    };
  });
  timer.start(timeoutMs, () => stop("probe timed out"));
  return { result: run(fetchImpl, wsUrl, abort?.signal, stopped, timer), cancel: () => stop("probe cancelled") };
}

async function run(
  fetchImpl: FetchLike,
  wsUrl: string,
  signal: AbortSignal | undefined,
  timedOut: Promise<never>,
  timer: Timer,
): Promise<ProbeOutcome> {
  try {
    const res = await Promise.race([
      fetchImpl(httpUrlOf(wsUrl), { method: "GET", ...(signal ? { signal } : {}) }),
      timedOut,
    ]);
    if (res.status === 401) {
      const body = await Promise.race([readError(res), timedOut]);
      return { kind: "unauthorized", message: body.error ?? "unauthorized" };
    }
    if (res.status === 403) {
      const body = await Promise.race([readError(res), timedOut]);
      return { kind: "forbidden", code: body.code ?? "forbidden_origin", message: body.error ?? "origin not allowed" };
    }
    return { kind: "retry", status: res.status, message: `HTTP ${res.status}` };
  } catch (err) {
    // A cross-origin page cannot read the answer (the refusal carries no
    // CORS headers) and gets a network error here too: retry.
    return { kind: "retry", message: err instanceof Error ? err.message : String(err) };
  } finally {
    timer.stop();
    timedOut.catch(() => undefined);
  }
}
