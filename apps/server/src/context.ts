import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ReadResult, Storage } from '@streamkeep/storage';
import type { Logger } from 'pino';
import { type AdmissionQueue, admitRequest, type Release } from './http/admission.js';
import type { StreamCounter } from './http/limits.js';
import type { LiveWaiter } from './http/live.js';
import type { SharedReads } from './http/shared-read.js';
import type { ServerMetrics } from './metrics.js';
import type { AppConfig } from './settings/app-options.js';

/**
 * What a route gets for one request. It lives in a module of its own so that routes depend on it, and the app on the
 * routes, without the routes importing the app.
 */
export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly storage: Storage;
  readonly config: AppConfig;
  readonly logger: Logger;
  /** The app's metrics, when it has any: routes report what only they know (messages and bytes appended). */
  readonly metrics: ServerMetrics | undefined;
  /** The decoded stream name. */
  readonly name: string;
  /** The request path and query, for problem documents. */
  readonly instance: string;
  readonly query: URLSearchParams;
  /**
   * Registers a live request so shutdown can end it; returns the deregistration.
   *
   * @throws HttpError `TOO_MANY_LIVE_READS` (503) when `maxLiveReads` are already open.
   */
  trackLive(waiter: LiveWaiter): () => void;
  /**
   * Takes a storage slot (see `AppOptions.maxInFlight`), at once or after queueing; returns its release, which is
   * idempotent.
   *
   * @throws HttpError `OVERLOADED` (503) when shed; `REQUEST_ABORTED` when the client leaves the queue.
   */
  admit(): Release | Promise<Release>;
  /** The stream-count limit: reserve before creating, report deletes. */
  readonly streams: StreamCounter;
  /**
   * Reads up to `maxReadBytes` of this request's stream at `offset`, sharing a read of the same stream and offset
   * that other requests started after tick `notBefore` (see {@link SharedReads}). The result is shared: read-only.
   */
  read(offset: string, notBefore: number): Promise<ReadResult>;
}

/** What the app shares with every request's context. */
export interface AppServices {
  readonly storage: Storage;
  readonly config: AppConfig;
  readonly logger: Logger;
  readonly metrics: ServerMetrics | undefined;
  readonly admission: AdmissionQueue;
  readonly streams: StreamCounter;
  readonly reads: SharedReads;
  readonly trackLive: (waiter: LiveWaiter, req: IncomingMessage) => () => void;
}

/** The {@link RequestContext} of one request; the query string is parsed only if a route asks for it. */
export class Context implements RequestContext {
  private parsedQuery: URLSearchParams | undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    private readonly services: AppServices,
    readonly name: string,
    readonly instance: string,
    private readonly rawQuery: string,
  ) {}

  get storage(): Storage {
    return this.services.storage;
  }

  get config(): AppConfig {
    return this.services.config;
  }

  get logger(): Logger {
    return this.services.logger;
  }

  get metrics(): ServerMetrics | undefined {
    return this.services.metrics;
  }

  get streams(): StreamCounter {
    return this.services.streams;
  }

  read(offset: string, notBefore: number): Promise<ReadResult> {
    return this.services.reads.read(this.name, offset, this.services.config.maxReadBytes, notBefore);
  }

  get query(): URLSearchParams {
    this.parsedQuery ??= new URLSearchParams(this.rawQuery);
    return this.parsedQuery;
  }

  trackLive(waiter: LiveWaiter): () => void {
    return this.services.trackLive(waiter, this.req);
  }

  admit(): Release | Promise<Release> {
    return admitRequest(this.services.admission, this.res);
  }
}
