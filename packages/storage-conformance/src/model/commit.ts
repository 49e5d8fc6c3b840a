import type { AppendResult, ProducerAppendResult, ProducerIdentity } from '@streamkeep/storage';
import { contentTypeOf, fail, type ModelState, type ModelStream, sizeOf, utf8Order } from './state.js';

// The model's commits: appends and closes (content type, closure, `Stream-Seq` order, byte limits, TTL renewal) and
// idempotent producer appends (epochs, sequence numbers, duplicates, idle-state expiry). Each function runs inside
// `ModelState.run` and changes the state only once every check has passed.

/** Seven days: idle producer state is forgotten after this. */
const PRODUCER_IDLE_MS = 7 * 24 * 60 * 60 * 1000;

export interface ModelAppend {
  messages: readonly Uint8Array[];
  contentType?: string | undefined;
  seq?: string | undefined;
  close?: boolean | undefined;
}

export function append(state: ModelState, name: string, request: ModelAppend): AppendResult {
  const close = request.close === true;
  if (request.messages.length === 0 && !close) fail('EMPTY_APPEND');
  const s = state.access(name);
  if (request.messages.length > 0) {
    if (s.closed) fail('STREAM_CLOSED', { nextOffset: state.tail(s) });
    checkContentType(s, request.contentType);
  }
  checkStreamSeq(s, request.seq);
  return commit(state, s, request.messages, request.seq, close);
}

export function appendWithProducer(
  state: ModelState,
  name: string,
  request: ModelAppend & { producer: ProducerIdentity },
): ProducerAppendResult {
  if (state.capabilities?.producers === false) fail('NOT_SUPPORTED');
  const { producer } = request;
  if (
    producer.id.length === 0 ||
    !Number.isSafeInteger(producer.epoch) ||
    producer.epoch < 0 ||
    !Number.isSafeInteger(producer.seq) ||
    producer.seq < 0
  ) {
    fail('INVALID_PRODUCER');
  }
  const s = state.access(name);
  if (request.messages.length > 0) checkContentType(s, request.contentType);
  const stored = s.producers.get(producer.id);
  const known =
    stored !== undefined && state.now() - stored.updatedAt <= PRODUCER_IDLE_MS ? stored : undefined;
  if (known !== undefined) {
    if (producer.epoch < known.epoch)
      fail('PRODUCER_EPOCH_FENCED', { currentEpoch: known.epoch, receivedEpoch: producer.epoch });
    if (producer.epoch === known.epoch && producer.seq <= known.lastSeq) {
      const tail = state.tail(s);
      return {
        startOffset: tail,
        nextOffset: tail,
        closed: s.closed,
        duplicate: true,
        epoch: known.epoch,
        seq: known.lastSeq,
      };
    }
  }
  if (s.closed) fail('STREAM_CLOSED', { nextOffset: state.tail(s) });
  if (known === undefined) {
    if (producer.seq !== 0) fail('PRODUCER_SEQ_GAP', { expectedSeq: 0, receivedSeq: producer.seq });
  } else if (producer.epoch > known.epoch) {
    if (producer.seq !== 0) fail('PRODUCER_INVALID_EPOCH_SEQ');
  } else if (producer.seq !== known.lastSeq + 1)
    fail('PRODUCER_SEQ_GAP', { expectedSeq: known.lastSeq + 1, receivedSeq: producer.seq });
  checkStreamSeq(s, request.seq);
  const result = commit(state, s, request.messages, request.seq, request.close === true);
  s.producers.set(producer.id, { epoch: producer.epoch, lastSeq: producer.seq, updatedAt: state.now() });
  return { ...result, duplicate: false, epoch: producer.epoch, seq: producer.seq };
}

function checkContentType(s: ModelStream, raw: string | undefined): void {
  if (raw === undefined) fail('INVALID_CONTENT_TYPE');
  const actual = contentTypeOf(raw);
  if (actual !== s.contentType) fail('CONTENT_TYPE_MISMATCH', { expected: s.contentType, actual });
}

function checkStreamSeq(s: ModelStream, seq: string | undefined): void {
  if (seq !== undefined && s.lastSeq !== null && utf8Order(seq, s.lastSeq) <= 0)
    fail('SEQ_CONFLICT', { lastSeq: s.lastSeq, receivedSeq: seq });
}

function commit(
  state: ModelState,
  s: ModelStream,
  messages: readonly Uint8Array[],
  seq: string | undefined,
  close: boolean,
): AppendResult {
  state.checkLimits(sizeOf(messages), state.totalBytes(), s.localBytes);
  const startOffset = state.tail(s);
  state.push(s, messages);
  s.updatedAt = state.now();
  if (seq !== undefined) s.lastSeq = seq;
  state.renew(s);
  if (close) s.closed = true;
  return { startOffset, nextOffset: state.tail(s), closed: s.closed };
}
