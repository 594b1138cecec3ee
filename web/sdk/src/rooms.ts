// The rooms the application wants, and, per room, the last seq delivered:
// the resume point sent as `since` on every (re)subscribe, and the floor
// below which a message is a duplicate.

interface RoomState {
  /** Ask for the latest state when the room is not resumed through since. */
  latest: boolean;
  /** The seq of the last message delivered from this room. */
  lastSeq?: number;
  /**
   * After a gap (`recovered: false`) the next message is accepted whatever
   * its seq: if the server's stream was reset, seqs start again from 1 and
   * must not all be taken for duplicates.
   */
  afterGap?: boolean;
}

/** One `subscribe` payload. */
export interface SubscribePayload {
  rooms: string[];
  since?: Record<string, number>;
  latest?: boolean;
}

// The server closes a connection sending a frame over 8192 bytes (1009) and
// refuses a subscribe listing more rooms than it allows per connection
// (256 by default): a client with many rooms splits its subscribes.
export const MAX_SUBSCRIBE_BYTES = 6000;
export const MAX_ROOMS_PER_SUBSCRIBE = 100;

/**
 * Splits a list of rooms into lists whose JSON stays within the limits
 * above; cost is what a room adds to its message (its quoted name, by
 * default).
 */
export function chunkRooms(rooms: string[], cost: (room: string) => number = (room) => room.length + 4): string[][] {
  const chunks: string[][] = [];
  let current: string[] = [];
  let size = 100;
  for (const room of rooms) {
    const roomCost = cost(room);
    if (current.length > 0 && (size + roomCost > MAX_SUBSCRIBE_BYTES || current.length >= MAX_ROOMS_PER_SUBSCRIBE)) {
      chunks.push(current);
      current = [];
      size = 100;
    }
    current.push(room);
    size += roomCost;
  }
  if (current.length > 0) chunks.push(current);
  return chunks;
}

export class RoomTracker {
  private readonly rooms = new Map<string, RoomState>();

  /** Adds rooms (or updates their `latest` wish); their resume points are kept. */
  add(rooms: string[], latest: boolean): void {
    for (const room of rooms) {
      const state = this.rooms.get(room);
      if (state) state.latest = latest;
      else this.rooms.set(room, { latest });
    }
  }

  /** Forgets rooms, resume points included. */
  remove(rooms: string[]): void {
    for (const room of rooms) this.rooms.delete(room);
  }

  has(room: string): boolean {
    return this.rooms.has(room);
  }

  list(): string[] {
    return [...this.rooms.keys()];
  }

  /** The last seq delivered from the room. */
  lastSeq(room: string): number | undefined {
    return this.rooms.get(room)?.lastSeq;
  }

  /**
   * Whether a room message is to be delivered: not for a room the
   * application has left, and not at or below the last seq delivered (a
   * replayed duplicate). Snapshots (no seq) are always delivered and never
   * move the resume point.
   */
  accept(room: string, seq: number | undefined): boolean {
    const state = this.rooms.get(room);
    if (!state) return false;
    if (seq === undefined) return true;
    if (state.lastSeq !== undefined && seq <= state.lastSeq && !state.afterGap) return false;
    state.lastSeq = seq;
    state.afterGap = false;
    return true;
  }

  /** The server could not resume the room from its last seq. */
  markGap(room: string): void {
    const state = this.rooms.get(room);
    if (state) state.afterGap = true;
  }

  /**
   * The subscribe payloads that (re)join rooms: each room with `since` once
   * it has a seq, grouped by their `latest` wish (one flag per message), and
   * split so that no frame comes near the server's size limits.
   */
  subscribePayloads(rooms: string[]): SubscribePayload[] {
    const groups = new Map<boolean, string[]>();
    for (const room of rooms) {
      const state = this.rooms.get(room);
      if (!state) continue;
      const group = groups.get(state.latest) ?? [];
      group.push(room);
      groups.set(state.latest, group);
    }
    const out: SubscribePayload[] = [];
    for (const [latest, group] of groups) {
      // A room with a seq is named twice (in rooms and in since), with its seq.
      const cost = (room: string) => 2 * (room.length + 4) + (this.rooms.get(room)!.lastSeq !== undefined ? 20 : 0);
      for (const chunk of chunkRooms(group, cost)) {
        const payload: SubscribePayload = { rooms: chunk };
        if (latest) payload.latest = true;
        for (const room of chunk) {
          const seq = this.rooms.get(room)!.lastSeq;
          if (seq !== undefined) (payload.since ??= {})[room] = seq;
        }
        out.push(payload);
      }
    }
    return out;
  }
}
