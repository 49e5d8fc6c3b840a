import { createGunzip } from 'node:zlib';
import { Pool } from 'undici';

export const BASE_PATH = '/v1/stream';

export interface ReadResult {
  /** Decoded payload bytes received. */
  readonly bytes: number;
  readonly requests: number;
}

/** A keep-alive connection pool to one server, with the few protocol calls the scenarios need. */
export class Client {
  readonly pool: Pool;

  constructor(
    readonly origin: string,
    connections: number,
  ) {
    this.pool = new Pool(origin, {
      connections,
      pipelining: 1,
      headersTimeout: 0,
      bodyTimeout: 0,
      keepAliveTimeout: 4_000,
    });
  }

  path(name: string): string {
    return `${BASE_PATH}/${encodeURIComponent(name)}`;
  }

  async create(name: string, contentType: string): Promise<void> {
    const res = await this.pool.request({
      method: 'PUT',
      path: this.path(name),
      headers: { 'content-type': contentType },
    });
    await res.body.dump();
    if (res.statusCode !== 201 && res.statusCode !== 200) throw new Error(`PUT ${name}: ${res.statusCode}`);
  }

  /** Appends one message; resolves to the new tail offset. */
  async append(name: string, body: Buffer | string, contentType: string): Promise<string> {
    const res = await this.pool.request({
      method: 'POST',
      path: this.path(name),
      headers: { 'content-type': contentType },
      body,
    });
    await res.body.dump();
    if (res.statusCode !== 204 && res.statusCode !== 200) throw new Error(`POST ${name}: ${res.statusCode}`);
    return String(res.headers['stream-next-offset'] ?? '');
  }

  async tail(name: string): Promise<string> {
    const res = await this.pool.request({ method: 'HEAD', path: this.path(name) });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`HEAD ${name}: ${res.statusCode}`);
    return String(res.headers['stream-next-offset'] ?? '');
  }

  async remove(name: string): Promise<void> {
    const res = await this.pool.request({ method: 'DELETE', path: this.path(name) });
    await res.body.dump();
  }

  /** Reads from the start until the server says up to date, following Stream-Next-Offset. */
  async readAll(name: string, encoding: 'identity' | 'gzip'): Promise<ReadResult> {
    let offset = '-1';
    let bytes = 0;
    let requests = 0;
    for (;;) {
      requests++;
      const res = await this.pool.request({
        method: 'GET',
        path: `${this.path(name)}?offset=${encodeURIComponent(offset)}`,
        headers: { 'accept-encoding': encoding },
      });
      if (res.statusCode !== 200) {
        await res.body.dump();
        throw new Error(`GET ${name}: ${res.statusCode}`);
      }
      if (res.headers['content-encoding'] === 'gzip') {
        const gunzip = createGunzip();
        const done = new Promise<void>((resolve, reject) => {
          gunzip.on('data', (c: Buffer) => {
            bytes += c.length;
          });
          gunzip.on('end', resolve);
          gunzip.on('error', reject);
        });
        res.body.pipe(gunzip);
        await done;
      } else {
        for await (const chunk of res.body) bytes += (chunk as Buffer).length;
      }
      const next = String(res.headers['stream-next-offset'] ?? '');
      if (res.headers['stream-up-to-date'] === 'true' || next === offset || next === '') break;
      offset = next;
    }
    return { bytes, requests };
  }

  async close(): Promise<void> {
    await this.pool.destroy();
  }
}

/** Runs `tasks` jobs with at most `concurrency` in flight. */
export async function runBounded(
  tasks: number,
  concurrency: number,
  job: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks) {
      const i = next++;
      await job(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, tasks) }, worker));
}
