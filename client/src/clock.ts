// Clocks: the real one, and a virtual one that tests and the capacity bench advance by
// hand, so the scheduler's decisions are reproducible and never wait for wall time.
import type { Clock } from './types.js';

export const realClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface VirtualClock extends Clock {
  /** Moves time forward, running due timers in time order (each sees its own now). */
  advance(ms: number): void;
  /** Moves to `t` (absolute ms) the same way. */
  advanceTo(t: number): void;
  /** Due time of the earliest pending timer, or null. */
  next(): number | null;
}

export function virtualClock(start = 0): VirtualClock {
  let now = start;
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const earliest = () => {
    let best: [number, { at: number; fn: () => void }] | null = null;
    for (const e of timers) if (!best || e[1].at < best[1].at) best = e;
    return best;
  };
  const advanceTo = (t: number) => {
    for (let e = earliest(); e && e[1].at <= t; e = earliest()) {
      timers.delete(e[0]);
      now = Math.max(now, e[1].at);
      e[1].fn();
    }
    now = Math.max(now, t);
  };
  return {
    now: () => now,
    setTimeout(fn, ms) {
      timers.set(++seq, { at: now + Math.max(0, ms), fn });
      return seq;
    },
    clearTimeout: (h) => void timers.delete(h as number),
    advance: (ms) => advanceTo(now + ms),
    advanceTo,
    next: () => earliest()?.[1].at ?? null,
  };
}
