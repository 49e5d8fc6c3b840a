import type { ReadResult } from '@streamkeep/storage';

/**
 * Server-Sent Events framing for §5.8.
 *
 * Every CR, LF and CRLF inside a payload starts a new `data:` line, so no payload can inject its own fields or events.
 * Lines are written as `data:<line>` (the form clients and the conformance suite match on), except that a line which
 * itself begins with a space gets one extra space after the colon: SSE parsers strip exactly one leading space, so
 * the payload's own space survives (the reference servers lose it).
 */

const LINE_BREAK = /\r\n|\r|\n/;

/** Frames one event. `data` may span lines; an empty payload still yields one (empty) `data:` line. */
export function sseEvent(event: string, data: string): string {
  let out = `event: ${event}\n`;
  if (data.indexOf('\n') === -1 && data.indexOf('\r') === -1) {
    out += dataLine(data);
  } else {
    for (const line of data.split(LINE_BREAK)) out += dataLine(line);
  }
  return `${out}\n`;
}

function dataLine(line: string): string {
  return line.charCodeAt(0) === 0x20 ? `data: ${line}\n` : `data:${line}\n`;
}

/** The fields of a control event (camelCase JSON, §5.8). */
export interface ControlFields {
  readonly streamNextOffset: string;
  readonly streamCursor?: string | undefined;
  readonly upToDate?: boolean | undefined;
  readonly streamClosed?: boolean | undefined;
}

/** Frames a control event: `streamNextOffset` always; the other fields only when they apply. */
export function sseControl(fields: ControlFields): string {
  const body: Record<string, unknown> = { streamNextOffset: fields.streamNextOffset };
  if (fields.streamCursor !== undefined) body.streamCursor = fields.streamCursor;
  if (fields.upToDate) body.upToDate = true;
  if (fields.streamClosed) body.streamClosed = true;
  return sseEvent('control', JSON.stringify(body));
}

/** A comment line: ignored by clients, keeps intermediaries from timing the connection out. */
export const SSE_KEEP_ALIVE = ': keep-alive\n\n';

/** How the data events of a stream are encoded, decided by its content type (§5.8). */
export type SseEncoding = 'json' | 'text' | 'base64';

/**
 * `text/*` and `application/json` are sent as UTF-8; every other type "MUST" be base64-encoded, announced with
 * `Stream-SSE-Data-Encoding: base64`.
 */
export function sseEncodingFor(contentType: string): SseEncoding {
  if (contentType === 'application/json') return 'json';
  if (contentType.startsWith('text/')) return 'text';
  return 'base64';
}

/**
 * Frames one data event holding `messages`. Each event stands alone (0.3.6 pairing rule): a JSON event is one complete
 * array, a base64 event is the padded encoding of exactly its own bytes.
 */
export function sseData(messages: readonly Uint8Array[], encoding: SseEncoding): string {
  switch (encoding) {
    case 'json': {
      let s = '[';
      for (let i = 0; i < messages.length; i++) {
        if (i > 0) s += ',';
        const m = messages[i]!;
        s += Buffer.from(m.buffer, m.byteOffset, m.byteLength).toString('utf8');
      }
      return sseEvent('data', `${s}]`);
    }
    case 'text':
      return sseEvent('data', concat(messages).toString('utf8'));
    case 'base64':
      return sseEvent('data', concat(messages).toString('base64'));
  }
}

const framed = new WeakMap<ReadResult, { encoding: SseEncoding; text: string }>();

/**
 * {@link sseData} of a read result's messages, framed once per result and encoding: SSE connections that share a read
 * result (see `SharedReads`) send the same string.
 */
export function sseDataOf(result: ReadResult, encoding: SseEncoding): string {
  const hit = framed.get(result);
  if (hit !== undefined && hit.encoding === encoding) return hit.text;
  const text = sseData(result.messages, encoding);
  framed.set(result, { encoding, text });
  return text;
}

/** Concatenates messages into one Buffer, without copying when there is only one. */
export function concat(messages: readonly Uint8Array[]): Buffer {
  if (messages.length === 1) {
    const m = messages[0]!;
    return Buffer.from(m.buffer, m.byteOffset, m.byteLength);
  }
  return Buffer.concat(messages);
}
