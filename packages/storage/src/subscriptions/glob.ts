import { StorageError } from '../errors.js';
import { isWellFormed } from '../rules/names.js';

/**
 * The glob rule of subscription patterns, over `/`-separated stream names.
 *
 * | pattern segment | matches |
 * | --- | --- |
 * | `**` (the whole segment) | zero or more whole segments |
 * | `*` (the whole segment) | exactly one segment, any text (the empty segment too) |
 * | text with `*` inside (`log-*`) | one segment; each `*` stands for any run of characters other than `/` |
 * | anything else | one segment, equal character for character (case-sensitive) |
 *
 * So `chat/*` matches `chat/a` but not `chat` or `chat/a/b`; `chat/**` matches `chat`, `chat/a` and `chat/a/b`;
 * `**` matches every name. There is no escaping and no `?` or `[…]`: those characters match themselves.
 */
export function matchesPattern(pattern: string, name: string): boolean {
  return matchSegments(pattern.split('/'), 0, name.split('/'), 0);
}

function matchSegments(pattern: readonly string[], p: number, name: readonly string[], n: number): boolean {
  while (p < pattern.length) {
    const segment = pattern[p]!;
    if (segment === '**') {
      // Consecutive `**` match no more than one does.
      while (p + 1 < pattern.length && pattern[p + 1] === '**') p++;
      if (p + 1 === pattern.length) return true;
      for (let skip = n; skip <= name.length; skip++) {
        if (matchSegments(pattern, p + 1, name, skip)) return true;
      }
      return false;
    }
    if (n >= name.length || !matchSegment(segment, name[n]!)) return false;
    p++;
    n++;
  }
  return n === name.length;
}

/** One segment against one segment: `*` is any run of characters (segments hold no `/`). */
function matchSegment(pattern: string, text: string): boolean {
  if (!pattern.includes('*')) return pattern === text;
  const parts = pattern.split('*');
  const first = parts[0]!;
  const last = parts[parts.length - 1]!;
  if (text.length < first.length + last.length) return false;
  if (!text.startsWith(first) || !text.endsWith(last)) return false;
  let at = first.length;
  const end = text.length - last.length;
  for (let i = 1; i < parts.length - 1; i++) {
    const found = text.indexOf(parts[i]!, at);
    if (found < 0 || found + parts[i]!.length > end) return false;
    at = found + parts[i]!.length;
  }
  return true;
}

/**
 * Checks a pattern: a non-empty, well-formed string in which `**` only appears as a whole segment (`a/**` is fine,
 * `a**` and `**b` are not: they would read as a one-segment wildcard and mislead).
 *
 * @throws StorageError `INVALID_SUBSCRIPTION`.
 */
export function validatePattern(pattern: string): void {
  if (pattern.length === 0) throw new StorageError('INVALID_SUBSCRIPTION', 'pattern must not be empty');
  if (!isWellFormed(pattern))
    throw new StorageError('INVALID_SUBSCRIPTION', 'pattern holds a lone surrogate');
  for (const segment of pattern.split('/')) {
    if (segment !== '**' && segment.includes('**')) {
      throw new StorageError(
        'INVALID_SUBSCRIPTION',
        `pattern segment ${JSON.stringify(segment)}: ** must be a whole segment`,
      );
    }
  }
}
