import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import type { AdmittedWebhookUrl } from './ssrf.js';

/** Bounds of the kept-alive connections to webhook receivers. */
export interface WebhookAgentOptions {
  /** Connections to one receiver at once (deliveries beyond wait for one). @default 16 */
  readonly maxSockets: number;
  /**
   * How long an idle connection is kept, in ms. Below the usual server keep-alive (Node: 5 s), so that this side
   * closes an idle connection before the receiver does, rather than sending a delivery into one being closed.
   * @default 4000
   */
  readonly idleMs: number;
}

interface Pool {
  readonly agent: HttpAgent;
  readonly users: Set<string>;
}

/**
 * Kept-alive connections to webhook receivers, one pool per *pinned origin*: scheme, host, port and the exact
 * addresses the SSRF check admitted. A connection is only ever reused for the origin and addresses it was opened to,
 * so reuse never bypasses the check, and a new admission that resolves elsewhere gets a new pool (and the old one is
 * closed when no subscription uses it). Subscriptions to one receiver share its pool: 1,000 subscriptions to one
 * service cost a few connections, not 1,000. A pool is closed when its last subscription is deleted or moves to
 * another pinned origin.
 */
export class WebhookAgents {
  private readonly pools = new Map<string, Pool>();
  /** The pool key each subscription uses. */
  private readonly keys = new Map<string, string>();

  constructor(private readonly options: WebhookAgentOptions) {}

  /** The agent for delivering to `target` on behalf of subscription `id`. */
  acquire(id: string, target: AdmittedWebhookUrl): HttpAgent {
    const key = poolKey(target);
    const previous = this.keys.get(id);
    if (previous !== key) {
      if (previous !== undefined) this.leave(id, previous);
      this.keys.set(id, key);
    }
    let pool = this.pools.get(key);
    if (pool === undefined) {
      const options = {
        keepAlive: true,
        maxSockets: this.options.maxSockets,
        maxFreeSockets: this.options.maxSockets,
        timeout: this.options.idleMs,
        scheduling: 'lifo' as const, // keep few sockets warm; the rest time out
      };
      const agent = target.url.protocol === 'https:' ? new HttpsAgent(options) : new HttpAgent(options);
      pool = { agent, users: new Set() };
      this.pools.set(key, pool);
    }
    pool.users.add(id);
    return pool.agent;
  }

  /** Subscription `id` was deleted: its pool is closed when no other subscription uses it. */
  release(id: string): void {
    const key = this.keys.get(id);
    if (key === undefined) return;
    this.keys.delete(id);
    this.leave(id, key);
  }

  /** Pools open (tests). */
  get size(): number {
    return this.pools.size;
  }

  close(): void {
    for (const pool of this.pools.values()) pool.agent.destroy();
    this.pools.clear();
    this.keys.clear();
  }

  private leave(id: string, key: string): void {
    const pool = this.pools.get(key);
    if (pool === undefined) return;
    pool.users.delete(id);
    if (pool.users.size === 0) {
      pool.agent.destroy();
      this.pools.delete(key);
    }
  }
}

function poolKey(target: AdmittedWebhookUrl): string {
  const addresses = target.addresses.map((a) => a.address).sort();
  return `${target.url.protocol}//${target.url.host}|${addresses.join(',')}`;
}
