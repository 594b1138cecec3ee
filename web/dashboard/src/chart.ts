// A small line chart on a <canvas>: one numeric field over a time window.

import { formatClock, formatNumber } from "./format";
import type { Series } from "./series";

export interface ChartColors {
  line: string;
  fill: string;
  grid: string;
  text: string;
}

export function readChartColors(el: Element): ChartColors {
  const cs = getComputedStyle(el);
  const v = (name: string, fallback: string) => cs.getPropertyValue(name).trim() || fallback;
  return {
    line: v("--chart-line", "#2563eb"),
    fill: v("--chart-fill", "rgba(37,99,235,.12)"),
    grid: v("--chart-grid", "rgba(100,116,139,.25)"),
    text: v("--chart-text", "#64748b"),
  };
}

/** Nice round steps for the y axis. */
function niceStep(range: number, ticks: number): number {
  const raw = range / Math.max(1, ticks);
  const mag = 10 ** Math.floor(Math.log10(raw));
  const n = raw / mag;
  return (n < 1.5 ? 1 : n < 3 ? 2 : n < 7 ? 5 : 10) * mag;
}

export interface DrawResult {
  min: number;
  max: number;
  points: number;
}

export function drawChart(canvas: HTMLCanvasElement, s: Series, windowMs: number, now: number, colors: ChartColors): DrawResult {
  const dpr = Math.min(window.devicePixelRatio || 1, 2);
  const cssW = canvas.clientWidth || 300;
  const cssH = canvas.clientHeight || 120;
  const w = Math.round(cssW * dpr);
  const hgt = Math.round(cssH * dpr);
  if (canvas.width !== w || canvas.height !== hgt) {
    canvas.width = w;
    canvas.height = hgt;
  }
  const ctx = canvas.getContext("2d");
  if (!ctx) return { min: NaN, max: NaN, points: 0 };
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, cssW, cssH);

  const from = now - windowMs;
  const first = Math.max(0, s.firstIndexFrom(from) - 1);
  let min = Infinity;
  let max = -Infinity;
  for (let k = first; k < s.length; k++) {
    const v = s.valueAt(k);
    if (v < min) min = v;
    if (v > max) max = v;
  }
  const points = s.length - first;

  const padL = 44;
  const padR = 8;
  const padT = 8;
  const padB = 18;
  const plotW = cssW - padL - padR;
  const plotH = cssH - padT - padB;

  ctx.font = "11px system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif";
  ctx.textBaseline = "middle";
  ctx.lineWidth = 1;

  if (points === 0 || !Number.isFinite(min)) {
    ctx.fillStyle = colors.text;
    ctx.textAlign = "center";
    ctx.fillText("No readings in this window", cssW / 2, cssH / 2);
    return { min: NaN, max: NaN, points: 0 };
  }

  // Y scale with a little headroom; a flat line sits in the middle.
  let lo = min;
  let hi = max;
  if (hi - lo < 1e-9) {
    const pad = Math.abs(hi) * 0.05 || 1;
    lo -= pad;
    hi += pad;
  }
  const step = niceStep(hi - lo, 3);
  lo = Math.floor(lo / step) * step;
  hi = Math.ceil(hi / step) * step;
  const y = (v: number) => padT + plotH - ((v - lo) / (hi - lo)) * plotH;
  const x = (t: number) => padL + ((t - from) / windowMs) * plotW;

  // Grid and labels.
  ctx.strokeStyle = colors.grid;
  ctx.fillStyle = colors.text;
  ctx.textAlign = "right";
  ctx.beginPath();
  for (let v = lo; v <= hi + step / 2; v += step) {
    const yy = Math.round(y(v)) + 0.5;
    ctx.moveTo(padL, yy);
    ctx.lineTo(padL + plotW, yy);
    ctx.fillText(formatNumber(Number(v.toPrecision(6))), padL - 6, yy);
  }
  ctx.stroke();
  ctx.textAlign = "center";
  ctx.textBaseline = "alphabetic";
  ctx.fillText(formatClock(from), padL + 28, cssH - 4);
  ctx.textAlign = "right";
  ctx.fillText(formatClock(now), padL + plotW, cssH - 4);

  // The line, broken where readings stopped for much longer than usual.
  const span = s.timeAt(s.length - 1) - s.timeAt(first);
  const typical = points > 1 ? span / (points - 1) : windowMs;
  const gap = Math.max(3 * typical, 5000);
  ctx.save();
  ctx.beginPath();
  ctx.rect(padL, padT - 2, plotW, plotH + 4);
  ctx.clip();

  const path = new Path2D();
  const area = new Path2D();
  let started = false;
  let segStartX = 0;
  let lastX = 0;
  let lastT = 0;
  const base = padT + plotH;
  const closeArea = () => {
    if (started) {
      area.lineTo(lastX, base);
      area.lineTo(segStartX, base);
      area.closePath();
    }
  };
  for (let k = first; k < s.length; k++) {
    const t = s.timeAt(k);
    const xx = x(t);
    const yy = y(s.valueAt(k));
    if (!started || t - lastT > gap) {
      closeArea();
      path.moveTo(xx, yy);
      area.moveTo(xx, base);
      area.lineTo(xx, yy);
      segStartX = xx;
      started = true;
    } else {
      path.lineTo(xx, yy);
      area.lineTo(xx, yy);
    }
    lastX = xx;
    lastT = t;
  }
  closeArea();
  ctx.fillStyle = colors.fill;
  ctx.fill(area);
  ctx.strokeStyle = colors.line;
  ctx.lineWidth = 1.75;
  ctx.lineJoin = "round";
  ctx.stroke(path);
  // The newest point.
  ctx.fillStyle = colors.line;
  ctx.beginPath();
  ctx.arc(lastX, y(s.valueAt(s.length - 1)), 2.5, 0, Math.PI * 2);
  ctx.fill();
  ctx.restore();
  return { min, max, points };
}
