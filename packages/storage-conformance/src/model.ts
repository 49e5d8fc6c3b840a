import {
  type AppendResult,
  type Clock,
  type CreateStreamOptions,
  type CreateStreamResult,
  type DeleteResult,
  type ForkInfo,
  type ForkOptions,
  formatOffset,
  type ListStreamsOptions,
  type ProducerAppendResult,
  type ProducerIdentity,
  type ReadResult,
  type StorageCapabilities,
  type StreamConfig,
  type StreamMetadata,
} from '@streamkeep/storage';
import { append, appendWithProducer } from './model/commit.js';
import { cleanupExpiredStreams, createFork, createStream, deleteStream } from './model/lifecycle.js';
import { exists, head, listStreams, read } from './model/reads.js';
import {
  configOf,
  type ModelLimits,
  type ModelMessage,
  type ModelProducer,
  ModelState,
  type Outcome,
} from './model/state.js';

// The reference model restates every rule of the contract on its own, on purpose without the contract's shared rule
// helpers (planCommit, decideProducer, checkStreamSeq, compareUtf8, …): a bug in those helpers would otherwise be
// copied into the model and every backend would agree with it.
//
// This file is the model's public face: the queries the kit steers commands by, and one method per storage operation,
// each run through `ModelState.run` and handed to the module that owns it — `model/lifecycle.ts` (create, fork,
// delete, expiry), `model/commit.ts` (append, close, producer appends), `model/reads.ts` (read, head, exists,
// listing); `model/state.ts` holds the streams and the rules they share.

export type { ModelLimits, ModelMessage, Outcome } from './model/state.js';

/**
 * A small, pure, obviously-correct reference implementation of the storage contract, driven by the same clock as the
 * backend under test. Every operation returns the value the backend must return, or the error code it must reject
 * with, and changes the model only on success.
 */
export class StorageModel {
  readonly #state: ModelState;

  constructor(
    readonly clock: Clock,
    readonly limits: ModelLimits = {},
    readonly capabilities?: StorageCapabilities,
  ) {
    this.#state = new ModelState(clock, limits, capabilities);
  }

  // ----- queries the kit uses to steer commands -------------------------------------------------------------------

  /** The logical content of a stream (ancestors within their bounds, then its own), or `[]` when there is none. */
  messagesOf(name: string): ModelMessage[] {
    const s = this.#state.streams.get(name);
    return s === undefined ? [] : this.#state.logical(s);
  }

  /** Every message boundary of a stream, tail included (`[ZERO]` when the stream does not exist). */
  boundariesOf(name: string): string[] {
    const s = this.#state.streams.get(name);
    if (s === undefined) return [formatOffset(0, 0)];
    return [...this.#state.logical(s).map((m) => m.offset), this.#state.tail(s)];
  }

  /** The stream's content type when it exists (tombstones and expired streams included). */
  contentTypeOf(name: string): string | undefined {
    return this.#state.streams.get(name)?.contentType;
  }

  /** True when the name holds any entry (visible, expired or tombstoned). */
  has(name: string): boolean {
    return this.#state.streams.has(name);
  }

  /** What the kit steers by: a stream's config, closure, lineage and visibility, or `undefined` when it has no entry. */
  streamOf(name: string):
    | {
        readonly config: StreamConfig;
        readonly closed: boolean;
        readonly fork: ForkInfo | null;
        readonly visible: boolean;
      }
    | undefined {
    const s = this.#state.streams.get(name);
    if (s === undefined) return undefined;
    return {
      config: configOf(s),
      closed: s.closed,
      fork: s.fork,
      visible: !s.tombstone && !this.#state.expired(s),
    };
  }

  /** The stored producer state, for steering producer commands towards interesting sequence numbers. */
  producerOf(name: string, id: string): Readonly<ModelProducer> | undefined {
    return this.#state.streams.get(name)?.producers.get(id);
  }

  // ----- operations -------------------------------------------------------------------------------------------------

  createStream(name: string, options: CreateStreamOptions): Outcome<CreateStreamResult> {
    return this.#state.run(() => createStream(this.#state, name, options));
  }

  createFork(name: string, options: ForkOptions): Outcome<CreateStreamResult> {
    return this.#state.run(() => createFork(this.#state, name, options));
  }

  append(
    name: string,
    request: {
      messages: readonly Uint8Array[];
      contentType?: string | undefined;
      seq?: string | undefined;
      close?: boolean | undefined;
    },
  ): Outcome<AppendResult> {
    return this.#state.run(() => append(this.#state, name, request));
  }

  closeStream(name: string, options: { seq?: string | undefined } = {}): Outcome<AppendResult> {
    return this.append(name, { messages: [], close: true, seq: options.seq });
  }

  appendWithProducer(
    name: string,
    request: {
      messages: readonly Uint8Array[];
      contentType?: string | undefined;
      seq?: string | undefined;
      close?: boolean | undefined;
      producer: ProducerIdentity;
    },
  ): Outcome<ProducerAppendResult> {
    return this.#state.run(() => appendWithProducer(this.#state, name, request));
  }

  read(name: string, from: string, options: { maxBytes?: number | undefined } = {}): Outcome<ReadResult> {
    return this.#state.run(() => read(this.#state, name, from, options));
  }

  head(name: string): Outcome<StreamMetadata> {
    return this.#state.run(() => head(this.#state, name));
  }

  exists(name: string): Outcome<boolean> {
    return { ok: true, value: exists(this.#state, name) };
  }

  delete(name: string): Outcome<DeleteResult> {
    return this.#state.run(() => deleteStream(this.#state, name));
  }

  listStreams(options: ListStreamsOptions = {}): Outcome<StreamMetadata[]> {
    return this.#state.run(() => listStreams(this.#state, options));
  }

  cleanupExpiredStreams(): Outcome<number> {
    return { ok: true, value: cleanupExpiredStreams(this.#state) };
  }
}
