import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer } from './helpers.js';

/** The headers every response carries, written with the route's own in one `writeHead` (src/http/respond.ts). */
describe.each([
  ['every origin', '*' as const],
  ['an origin list', ['https://a.example']],
])('base headers with %s allowed', (_label, corsOrigins) => {
  let server: Awaited<ReturnType<typeof startTestServer>>;
  let base: string;
  const list = corsOrigins !== '*';
  beforeAll(async () => {
    server = await startTestServer('memory', { corsOrigins });
    await server.storage;
    base = `${server.url}/v1/stream`;
  });
  afterAll(() => server.stop());

  const security = (h: Headers): void => {
    expect(h.get('x-content-type-options')).toBe('nosniff');
    expect(h.get('cross-origin-resource-policy')).toBe('cross-origin');
    expect(h.get('content-security-policy')).toBe("default-src 'none'; frame-ancestors 'none'; sandbox");
    expect(h.get('referrer-policy')).toBe('no-referrer');
  };

  it('on appends, reads, errors and preflights, merged with the route Vary', async () => {
    const url = `${base}/h-${Date.now()}`;
    const origin = { Origin: 'https://a.example' };
    const put = await fetch(url, { method: 'PUT', headers: { ...origin, 'Content-Type': 'text/plain' } });
    const post = await fetch(url, {
      method: 'POST',
      headers: { ...origin, 'Content-Type': 'text/plain' },
      body: 'x'.repeat(4096),
    });
    const read = await fetch(`${url}?offset=-1`, { headers: { ...origin, 'Accept-Encoding': 'gzip' } });
    const missing = await fetch(`${base}/none-${Date.now()}`, { headers: origin });
    const preflight = await fetch(url, { method: 'OPTIONS', headers: origin });
    expect([put.status, post.status, read.status, missing.status, preflight.status]).toEqual([
      201, 204, 200, 404, 204,
    ]);
    expect(read.headers.get('content-encoding')).toBe('gzip');
    expect(await read.text()).toBe('x'.repeat(4096));
    for (const r of [put, post, read, missing, preflight]) {
      security(r.headers);
      expect(r.headers.get('access-control-allow-origin')).toBe(list ? 'https://a.example' : '*');
      expect(r.headers.get('access-control-expose-headers')).toContain('Stream-Next-Offset');
    }
    expect(read.headers.get('vary')).toBe(list ? 'Origin, Accept-Encoding' : 'Accept-Encoding');
    for (const r of [put, post, missing, preflight])
      expect(r.headers.get('vary')).toBe(list ? 'Origin' : null);
  });

  it('for an origin that is not allowed: security headers and Vary, no CORS grant', async () => {
    const res = await fetch(`${base}/none-${Date.now()}`, { headers: { Origin: 'https://evil.example' } });
    expect(res.status).toBe(404);
    security(res.headers);
    expect(res.headers.get('access-control-allow-origin')).toBe(list ? null : '*');
    expect(res.headers.get('vary')).toBe(list ? 'Origin' : null);
  });
});
