// Tokens: where the dashboard finds one (URL fragment, session storage), and
// what it can read from it without verifying it (the server does that).

import { decodeJwtClaims } from "@sensorcast/client";

const STORAGE_KEY = "sensorcast.token";

export interface Claims {
  sub?: string;
  exp?: number;
  iat?: number;
  rooms: string[];
  commands: string[];
}

/**
 * Takes `token` out of the URL fragment (`#token=...`, as printed by
 * `make run`) and removes it from the address bar, keeping any other
 * fragment parameters. Returns null when the fragment has no token.
 */
export function takeTokenFromLocation(): string | null {
  const hash = location.hash.replace(/^#/, "");
  if (!hash) return null;
  const params = new URLSearchParams(hash);
  const token = params.get("token");
  if (token === null) return null;
  params.delete("token");
  const rest = params.toString();
  history.replaceState(history.state, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  return token.trim() || null;
}

export function loadStoredToken(): string | null {
  try {
    return sessionStorage.getItem(STORAGE_KEY);
  } catch {
    return null;
  }
}

export function storeToken(token: string | null): void {
  try {
    if (token) sessionStorage.setItem(STORAGE_KEY, token);
    else sessionStorage.removeItem(STORAGE_KEY);
  } catch {
    // Storage may be disabled (private mode): the session just won't survive a reload.
  }
}

function stringList(v: unknown): string[] {
  if (Array.isArray(v)) return v.filter((x): x is string => typeof x === "string");
  if (typeof v === "string") return v.split(/[\s,]+/).filter(Boolean);
  return [];
}

/** Decodes a JWT's claims, or explains why it can't. Nothing is verified here. */
export function decodeToken(token: string): { claims: Claims } | { error: string } {
  const c = decodeJwtClaims(token);
  if (!c) return { error: "This is not a JWT: it should be three dot-separated parts, the second a JSON object of claims." };
  return {
    claims: {
      sub: typeof c.sub === "string" ? c.sub : undefined,
      exp: typeof c.exp === "number" ? c.exp : undefined,
      iat: typeof c.iat === "number" ? c.iat : undefined,
      rooms: stringList(c.rooms),
      commands: stringList(c.commands),
    },
  };
}

/** Whether a room pattern (exact, or a prefix ending in `*` matching a non-empty rest) matches a room. */
export function patternMatches(pattern: string, room: string): boolean {
  if (pattern.endsWith("*")) {
    const prefix = pattern.slice(0, -1);
    return room.length > prefix.length && room.startsWith(prefix);
  }
  return pattern === room;
}

export function grants(patterns: string[], room: string): boolean {
  return patterns.some((p) => patternMatches(p, room));
}

/** Whether the token's `commands` claim lets the user command a device (by its own room or a group's). */
export function mayCommand(claims: Claims, deviceId: string, groups: string[] = []): boolean {
  if (grants(claims.commands, "device:" + deviceId)) return true;
  return groups.some((g) => grants(claims.commands, "group:" + g));
}

/** True when the token might command some device: used to grey out command forms for watch-only tokens. */
export function mayCommandAnything(claims: Claims): boolean {
  return claims.commands.length > 0;
}
