// Which rooms to join, from the token's `rooms` claim.
//
// A token that grants `global` joins just `global`. Otherwise the dashboard
// joins the rooms the token names exactly, and expands wildcard patterns
// (`group:building-*`, `device:*`) through the device API: groups first (one
// room covers many devices), then the devices not covered by a joined group,
// up to the edge's limit of rooms per connection.

import { fetchDevices, fetchGroups } from "./api";
import { grants, type Claims } from "./auth";

export const MAX_ROOMS = 256;
const ROOM_RE = /^(global|(device|group):[A-Za-z0-9_\-:]{1,128})$/;

export interface RoomPlan {
  rooms: string[];
  /** Human notes: rooms left out, patterns that could not be expanded. */
  notes: string[];
}

export async function planRooms(claims: Claims, token: string): Promise<RoomPlan> {
  const patterns = claims.rooms;
  if (grants(patterns, "global")) return { rooms: ["global"], notes: [] };

  const rooms: string[] = [];
  const have = new Set<string>();
  const notes: string[] = [];
  const add = (r: string): boolean => {
    if (have.has(r)) return true;
    if (rooms.length >= MAX_ROOMS) return false;
    have.add(r);
    rooms.push(r);
    return true;
  };

  for (const p of patterns) if (!p.endsWith("*") && ROOM_RE.test(p)) add(p);
  const wild = patterns.filter((p) => p.endsWith("*"));
  if (wild.length === 0) return { rooms, notes };

  let left = 0;
  // Groups.
  const groupWild = wild.filter((p) => "group:".startsWith(p.slice(0, -1)) || p.startsWith("group:"));
  const coveredGroups = new Set<string>();
  if (groupWild.length) {
    try {
      for (const g of await fetchGroups(token)) {
        const room = "group:" + g.id;
        if (!grants(groupWild, room)) continue;
        if (add(room)) coveredGroups.add(g.id);
        else left++;
      }
    } catch {
      notes.push(`Could not list groups to expand ${groupWild.join(", ")}.`);
    }
  }
  for (const r of rooms) if (r.startsWith("group:")) coveredGroups.add(r.slice(6));

  // Devices not in a joined group.
  const deviceWild = wild.filter((p) => "device:".startsWith(p.slice(0, -1)) || p.startsWith("device:"));
  if (deviceWild.length) {
    try {
      let after = "";
      for (let page = 0; page < 50; page++) {
        const res = await fetchDevices(token, { limit: 1000, after: after || undefined });
        for (const d of res.devices) {
          if ((d.groups ?? []).some((g) => coveredGroups.has(g))) continue;
          const room = "device:" + d.id;
          if (!grants(deviceWild, room)) continue;
          if (!add(room)) left++;
        }
        if (!res.next) break;
        if (rooms.length >= MAX_ROOMS) {
          left++; // at least one more page of granted devices
          break;
        }
        after = res.next;
      }
    } catch {
      notes.push(`Could not list devices to expand ${deviceWild.join(", ")}.`);
    }
  }
  if (left > 0) notes.push(`Watching the first ${MAX_ROOMS} rooms: the token grants more, but a connection may join at most ${MAX_ROOMS}.`);
  return { rooms, notes };
}
