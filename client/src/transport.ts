// One HTTP request to the worker: JSON in and out, a timeout on the SDK's clock, and the
// answer reduced to what the sync loop decides on (status, parsed body, Retry-After).
import type { Clock } from './types.js';

export interface Reply {
  /** HTTP status, or 0 when no response arrived. */
  status: number;
  /** Parsed JSON body; undefined when absent or not JSON. */
  body: any;
  /** Retry-After in ms, when given. */
  retryAfter?: number;
  /** "network" or "timeout" when status is 0. */
  failure?: 'network' | 'timeout';
}

export function retryAfterMs(header: string | null, now: number): number | undefined {
  if (!header) return undefined;
  if (/^\s*\d+\s*$/.test(header)) return Number(header) * 1000;
  const t = Date.parse(header);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** POST `body` as JSON, or GET when body is undefined. */
export async function request(
  f: typeof fetch,
  clock: Clock,
  url: string,
  token: string,
  body: unknown,
  timeoutMs: number,
): Promise<Reply> {
  const ctl = new AbortController();
  let timedOut = false;
  const timer = clock.setTimeout(() => {
    timedOut = true;
    ctl.abort();
  }, timeoutMs);
  try {
    const headers: Record<string, string> = { authorization: `Bearer ${token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const res = await f(url, {
      method: body === undefined ? 'GET' : 'POST',
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: ctl.signal,
    });
    const text = await res.text();
    let parsed: any;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = undefined;
    }
    return { status: res.status, body: parsed, retryAfter: retryAfterMs(res.headers.get('retry-after'), clock.now()) };
  } catch {
    return { status: 0, body: undefined, failure: timedOut ? 'timeout' : 'network' };
  } finally {
    clock.clearTimeout(timer);
  }
}
