import { HttpError } from '../error-status.js';

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: false });

function isWs(b: number): boolean {
  return b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d;
}

/**
 * Turns a JSON-mode body into messages, one JSON value each, keeping each value's bytes exactly as sent (no
 * re-serialisation, so large numbers and key order survive).
 *
 * §9.1: "servers MUST flatten exactly one level of array" — `[a,b]` is two messages, `[[1,2]]` is one message
 * `[1,2]`, and a non-array value is one message. Invalid JSON (or invalid UTF-8) "MUST" be 400.
 *
 * @returns the messages; an empty array for `[]` (the caller decides whether that is allowed: PUT yes, POST no).
 * @throws HttpError `INVALID_JSON`.
 */
export function splitJsonBody(body: Buffer): Buffer[] {
  let text: string;
  try {
    text = utf8.decode(body);
    JSON.parse(text);
  } catch (err) {
    throw new HttpError('INVALID_JSON', `body is not valid JSON: ${(err as Error).message}`);
  }
  // The body is valid JSON from here on, so a structural scan only has to track strings and nesting depth. The
  // structural bytes are ASCII and never occur inside a multi-byte UTF-8 sequence, so scanning bytes is safe.
  // TextDecoder dropped a leading byte-order mark; drop it from the stored bytes too.
  let start = body[0] === 0xef && body[1] === 0xbb && body[2] === 0xbf ? 3 : 0;
  let end = body.length;
  while (start < end && isWs(body[start]!)) start++;
  while (end > start && isWs(body[end - 1]!)) end--;
  if (body[start] !== 0x5b /* [ */) return [body.subarray(start, end)];

  const out: Buffer[] = [];
  let depth = 0;
  let inString = false;
  let elementStart = start + 1;
  for (let i = start + 1; i < end - 1; i++) {
    const b = body[i]!;
    if (inString) {
      if (b === 0x5c /* \ */) i++;
      else if (b === 0x22 /* " */) inString = false;
      continue;
    }
    if (b === 0x22) inString = true;
    else if (b === 0x5b || b === 0x7b) depth++;
    else if (b === 0x5d || b === 0x7d) depth--;
    else if (b === 0x2c /* , */ && depth === 0) {
      out.push(trim(body, elementStart, i));
      elementStart = i + 1;
    }
  }
  const last = trim(body, elementStart, end - 1);
  if (last.length > 0 || out.length > 0) out.push(last);
  return out;
}

function trim(body: Buffer, from: number, to: number): Buffer {
  while (from < to && isWs(body[from]!)) from++;
  while (to > from && isWs(body[to - 1]!)) to--;
  return body.subarray(from, to);
}
