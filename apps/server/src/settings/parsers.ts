import { InvalidArgumentError } from 'commander';

/**
 * Value parsers of the settings table. Each takes the raw text of a flag or environment variable and returns the
 * typed value, or throws commander's `InvalidArgumentError`, whose message commander prefixes with the flag or the
 * variable that carried the value.
 */

/** A whole number in `[min, max]`; `_` may group digits (`1_000_000`). */
export function integer(min: number, max = Number.MAX_SAFE_INTEGER) {
  return (raw: string): number => {
    const t = raw.trim().replace(/_/g, '');
    const n = Number(t);
    if (!/^[0-9]+$/.test(t) || !Number.isSafeInteger(n) || n < min || n > max) {
      const range = max === Number.MAX_SAFE_INTEGER ? `>= ${min}` : `from ${min} to ${max}`;
      throw new InvalidArgumentError(`expected a whole number ${range}, got ${JSON.stringify(raw)}`);
    }
    return n;
  };
}

/** Byte sizes: a whole number with an optional binary unit (`10mib`, `512k`, `1g`). */
export function parseBytes(raw: string): number {
  const m = /^\s*([0-9_]+)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?\s*$/i.exec(raw);
  if (m === null)
    throw new InvalidArgumentError(
      `expected a byte size such as 1048576 or 10mib, got ${JSON.stringify(raw)}`,
    );
  const n = Number(m[1]!.replace(/_/g, ''));
  const unit = (m[2] ?? 'b').toLowerCase()[0];
  const scale = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  const v = n * scale;
  if (!Number.isSafeInteger(v)) throw new InvalidArgumentError(`byte size too large: ${raw}`);
  return v;
}

/** A byte size of at least `min`. */
export function atLeastBytes(min: number) {
  return (raw: string): number => {
    const n = parseBytes(raw);
    if (n < min) throw new InvalidArgumentError(`expected at least ${min} bytes, got ${JSON.stringify(raw)}`);
    return n;
  };
}

/** A limit where `0`, `none` or `unlimited` mean no limit (`undefined`). */
export function optional(parse: (raw: string) => number) {
  return (raw: string): number | undefined => {
    const t = raw.trim().toLowerCase();
    return t === '' || t === '0' || t === 'none' || t === 'unlimited' ? undefined : parse(raw);
  };
}

export function parseBoolean(raw: string): boolean {
  const t = raw.trim().toLowerCase();
  if (['1', 'true', 'yes', 'on'].includes(t)) return true;
  if (['0', 'false', 'no', 'off'].includes(t)) return false;
  throw new InvalidArgumentError(`expected true or false, got ${JSON.stringify(raw)}`);
}

export function origins(raw: string): '*' | string[] {
  const list = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
  if (list.length === 0 || list.includes('*')) return '*';
  return list;
}

/** A `postgres://` or `postgresql://` URL; the message never repeats it, since it may hold a password. */
export function postgresUrl(raw: string): string {
  const t = raw.trim();
  let url: URL | undefined;
  try {
    url = new URL(t);
  } catch {
    url = undefined;
  }
  if (url === undefined || (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:')) {
    throw new InvalidArgumentError('expected a URL such as postgresql://user:password@host:5432/database');
  }
  return t;
}

/** The identifiers `PostgresStorage` accepts as a schema name, checked here so a typo is a flag error, not a crash. */
export function postgresSchema(raw: string): string {
  const t = raw.trim();
  if (!/^[A-Za-z_][A-Za-z0-9_]{0,62}$/.test(t) || /^pg_/i.test(t)) {
    throw new InvalidArgumentError(
      `expected a plain identifier (letters, digits, _; not starting with a digit or pg_; at most 63 characters), got ${JSON.stringify(raw)}`,
    );
  }
  return t;
}

export function basePath(raw: string): string {
  const t = raw.trim();
  if (!t.startsWith('/') || /[?#\s]/.test(t)) {
    throw new InvalidArgumentError(`expected a path starting with /, got ${JSON.stringify(raw)}`);
  }
  return t;
}

/**
 * An absolute `http(s)` origin (scheme, host, optional port; no credentials, path, query or fragment), returned in
 * its normal form: `HTTPS://Streams.Example.com:443/` gives `https://streams.example.com`.
 */
export function publicOrigin(raw: string): string {
  const t = raw.trim().replace(/\/+$/, '');
  let url: URL | undefined;
  try {
    url = new URL(t);
  } catch {
    url = undefined;
  }
  if (
    url === undefined ||
    (url.protocol !== 'http:' && url.protocol !== 'https:') ||
    url.username !== '' ||
    url.password !== '' ||
    url.pathname !== '/' ||
    /[?#]/.test(t)
  ) {
    throw new InvalidArgumentError(
      `expected an origin such as https://streams.example.com, got ${JSON.stringify(raw)}`,
    );
  }
  return url.origin;
}

/** A non-empty host name or address to listen on. */
export function host(raw: string): string {
  const t = raw.trim();
  if (t === '' || /\s/.test(t))
    throw new InvalidArgumentError(`expected a host name or address, got ${JSON.stringify(raw)}`);
  return t;
}
