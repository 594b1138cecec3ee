import type { CommandCall, CommandResult, CommandStatus } from "./types.js";

const FINAL: ReadonlySet<CommandStatus> = new Set(["succeeded", "failed", "timeout", "rejected"]);

export function isFinalStatus(status: string): boolean {
  return FINAL.has(status as CommandStatus);
}

/**
 * One command's statuses, as a listener list, an async iterator and a
 * promise of the final one. Statuses are kept (there are at most four), so
 * that late listeners and iterators see them all, in order.
 */
export class CommandCallImpl implements CommandCall {
  readonly done: Promise<CommandResult>;
  private readonly results: CommandResult[] = [];
  private readonly listeners = new Set<(r: CommandResult) => void>();
  private readonly wakers = new Set<() => void>();
  private resolveDone!: (r: CommandResult) => void;
  private rejectDone!: (err: Error) => void;
  private finished = false;
  private failure: Error | undefined;
  private readonly onFinish: Array<() => void> = [];

  constructor(
    readonly requestId: string,
    /** The device commanded (for results the server sends without one). */
    readonly deviceId: string,
  ) {
    this.done = new Promise<CommandResult>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // A caller that only listens or iterates need not handle `done`: its
    // rejection must not surface as an unhandled one.
    this.done.catch(() => undefined);
  }

  /** Runs fn once the call is finished (final status or failure). */
  whenFinished(fn: () => void): void {
    if (this.finished) fn();
    else this.onFinish.push(fn);
  }

  /** A status arrived. Statuses after the final one, and repeats, are ignored. */
  push(result: CommandResult): void {
    if (this.finished) return;
    if (this.results.some((r) => r.status === result.status)) return;
    this.results.push(result);
    for (const listener of [...this.listeners]) this.call(listener, result);
    if (isFinalStatus(result.status)) {
      this.finish();
      this.resolveDone(result);
    } else {
      this.wake();
    }
  }

  /** The call ended without a final status. */
  fail(err: Error): void {
    if (this.finished) return;
    this.failure = err;
    this.finish();
    this.rejectDone(err);
  }

  onResult(listener: (r: CommandResult) => void): () => void {
    for (const r of [...this.results]) this.call(listener, r);
    if (this.finished) return () => undefined;
    const entry = (r: CommandResult) => listener(r);
    this.listeners.add(entry);
    return () => this.listeners.delete(entry);
  }

  [Symbol.asyncIterator](): AsyncIterator<CommandResult> {
    let next = 0;
    let stopped = false;
    return {
      next: async (): Promise<IteratorResult<CommandResult>> => {
        for (;;) {
          if (stopped) return { value: undefined, done: true };
          if (next < this.results.length) return { value: this.results[next++]!, done: false };
          if (this.finished) {
            if (this.failure) throw this.failure;
            return { value: undefined, done: true };
          }
          await new Promise<void>((resolve) => this.wakers.add(resolve));
        }
      },
      return: async (): Promise<IteratorResult<CommandResult>> => {
        stopped = true;
        return { value: undefined, done: true };
      },
    };
  }

  private finish(): void {
    this.finished = true;
    this.listeners.clear();
    this.wake();
    for (const fn of this.onFinish.splice(0)) fn();
  }

  private wake(): void {
    const wakers = [...this.wakers];
    this.wakers.clear();
    for (const w of wakers) w();
  }

  private call(listener: (r: CommandResult) => void, r: CommandResult): void {
    try {
      listener(r);
    } catch (err) {
      queueMicrotask(() => {
        throw err;
      });
    }
  }
}
