// The edge's read-only device API (same origin as the dashboard).
//
//   GET /api/v1/devices?q=&group=&limit=&after=   -> {devices, total, next}
//   GET /api/v1/groups                             -> {groups}
//
// A server without it (404) or without a device registry (503) is not an
// error for the dashboard: it then builds its device list from the telemetry
// and status it receives. `ApiUnavailable` says which.

export interface DeviceInfo {
  id: string;
  name?: string;
  type?: string;
  groups?: string[];
  labels?: Record<string, string>;
  enabled?: boolean;
}

export interface DevicePage {
  devices: DeviceInfo[];
  total: number;
  next: string;
}

export interface GroupInfo {
  id: string;
  name?: string;
  devices?: number;
}

export class ApiUnavailable extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

export class ApiUnauthorized extends Error {}

export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

async function errorText(res: Response): Promise<string> {
  try {
    const body = (await res.json()) as { error?: string };
    if (body && typeof body.error === "string") return body.error;
  } catch {
    // not JSON
  }
  return `${res.status} ${res.statusText}`.trim();
}

async function getJSON<T>(path: string, token: string, signal?: AbortSignal): Promise<T> {
  let res: Response;
  try {
    res = await fetch(path, { headers: { Authorization: "Bearer " + token, Accept: "application/json" }, signal, cache: "no-store" });
  } catch (e) {
    if ((e as Error).name === "AbortError") throw e;
    throw new ApiUnavailable(0, "the device API cannot be reached");
  }
  if (res.ok) {
    const ct = res.headers.get("Content-Type") ?? "";
    if (!ct.includes("json")) throw new ApiUnavailable(res.status, "the server has no device API");
    return (await res.json()) as T;
  }
  if (res.status === 401) throw new ApiUnauthorized(await errorText(res));
  if (res.status === 404 || res.status === 405 || res.status === 501) throw new ApiUnavailable(res.status, "the server has no device API");
  if (res.status === 503) throw new ApiUnavailable(res.status, await errorText(res));
  throw new ApiError(res.status, await errorText(res));
}

export function fetchDevices(
  token: string,
  query: { q?: string; group?: string; limit?: number; after?: string },
  signal?: AbortSignal,
): Promise<DevicePage> {
  const p = new URLSearchParams();
  if (query.q) p.set("q", query.q);
  if (query.group) p.set("group", query.group);
  if (query.limit) p.set("limit", String(query.limit));
  if (query.after) p.set("after", query.after);
  const qs = p.toString();
  return getJSON<DevicePage>("/api/v1/devices" + (qs ? "?" + qs : ""), token, signal).then((page) => ({
    devices: Array.isArray(page.devices) ? page.devices.filter((d) => d && typeof d.id === "string") : [],
    total: typeof page.total === "number" ? page.total : 0,
    next: typeof page.next === "string" ? page.next : "",
  }));
}

export function fetchGroups(token: string, signal?: AbortSignal): Promise<GroupInfo[]> {
  return getJSON<{ groups: GroupInfo[] }>("/api/v1/groups", token, signal).then((r) =>
    Array.isArray(r.groups) ? r.groups.filter((g) => g && typeof g.id === "string") : [],
  );
}
