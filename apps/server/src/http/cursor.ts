/**
 * Stream cursors for CDN request collapsing (§10.1). A cursor is the number of `intervalSeconds` intervals since
 * `epochMs` (defaults: 20 s since 2024-10-09T00:00:00Z, both SHOULDs), sent as a decimal string.
 *
 * "If the client's cursor is ≥ the current interval, the server MUST return a cursor strictly greater than it",
 * adding 1–3600 s of random jitter so that clients caught in a cache loop spread out.
 */
export interface CursorPolicy {
  readonly intervalSeconds: number;
  readonly epochMs: number;
}

export const DEFAULT_CURSOR_POLICY: CursorPolicy = {
  intervalSeconds: 20,
  epochMs: Date.UTC(2024, 9, 9),
};

const MAX_JITTER_SECONDS = 3600;

/** The cursor to send, given the one the client echoed (if any). */
export function nextCursor(
  clientCursor: string | null | undefined,
  now: number,
  policy: CursorPolicy = DEFAULT_CURSOR_POLICY,
  random: () => number = Math.random,
): string {
  const intervalMs = policy.intervalSeconds * 1000;
  const current = Math.max(0, Math.floor((now - policy.epochMs) / intervalMs));
  if (clientCursor == null || !/^[0-9]{1,15}$/.test(clientCursor)) return String(current);
  const echoed = Number(clientCursor);
  if (echoed < current) return String(current);
  const jitterSeconds = 1 + Math.floor(random() * MAX_JITTER_SECONDS);
  return String(echoed + Math.max(1, Math.ceil(jitterSeconds / policy.intervalSeconds)));
}

/** For a connection that keeps sending cursors (SSE): never below the previous one, and never a new jitter. */
export function advanceCursor(
  previous: string,
  now: number,
  policy: CursorPolicy = DEFAULT_CURSOR_POLICY,
): string {
  const current = Math.max(0, Math.floor((now - policy.epochMs) / (policy.intervalSeconds * 1000)));
  return String(Math.max(Number(previous), current));
}
