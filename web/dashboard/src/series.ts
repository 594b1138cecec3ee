// A bounded history of one numeric field of one device, for its chart.
//
// Memory is bounded twice: at most CAPACITY points (a ring that grows from a
// small start, so quiet devices cost little), and points closer than
// MIN_SPACING_MS to the previous one replace it rather than adding one. At one
// reading a second that is the last 10 minutes; at 1,000 devices of five
// fields, at most ~24 MB (4-byte times and values).

export const CAPACITY = 600;
export const MIN_SPACING_MS = 250;
export const MAX_AGE_MS = 10 * 60_000;

/** Milliseconds since this base fit a Uint32 for 49 days. */
const BASE = Math.floor(Date.now() / 1000) * 1000 - MAX_AGE_MS;

export class Series {
  private t: Uint32Array;
  private v: Float32Array;
  private start = 0;
  private n = 0;
  /** Bumped on every change: charts redraw only when it moved. */
  version = 0;

  constructor(initial = 16) {
    this.t = new Uint32Array(initial);
    this.v = new Float32Array(initial);
  }

  get length(): number {
    return this.n;
  }

  /** Adds a reading at time `ms` (epoch). Readings older than the last one are ignored. */
  push(ms: number, value: number): void {
    if (!Number.isFinite(value) || !Number.isFinite(ms)) return;
    const rel = ms - BASE;
    if (rel < 0 || rel > 0xffffffff) return;
    if (this.n > 0) {
      const last = (this.start + this.n - 1) % this.t.length;
      const dt = rel - this.t[last]!;
      if (dt < 0) return;
      if (dt < MIN_SPACING_MS) {
        if (dt === 0 && this.v[last] === Math.fround(value)) return;
        this.t[last] = rel;
        this.v[last] = value;
        this.version++;
        return;
      }
    }
    if (this.n === this.t.length) {
      if (this.t.length < CAPACITY) this.grow();
      else {
        // Full: overwrite the oldest.
        this.start = (this.start + 1) % this.t.length;
        this.n--;
      }
    }
    const i = (this.start + this.n) % this.t.length;
    this.t[i] = rel;
    this.v[i] = value;
    this.n++;
    this.version++;
  }

  private grow(): void {
    const size = Math.min(CAPACITY, this.t.length * 2);
    const t = new Uint32Array(size);
    const v = new Float32Array(size);
    for (let k = 0; k < this.n; k++) {
      const i = (this.start + k) % this.t.length;
      t[k] = this.t[i]!;
      v[k] = this.v[i]!;
    }
    this.t = t;
    this.v = v;
    this.start = 0;
  }

  /** Time (epoch ms) and value of the k-th oldest point. */
  timeAt(k: number): number {
    return this.t[(this.start + k) % this.t.length]! + BASE;
  }
  valueAt(k: number): number {
    return this.v[(this.start + k) % this.t.length]!;
  }

  /** Index of the first point at or after `ms` (binary search; times only grow). */
  firstIndexFrom(ms: number): number {
    let lo = 0;
    let hi = this.n;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.timeAt(mid) < ms) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }
}
