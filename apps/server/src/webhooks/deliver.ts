import { type Agent, request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { DEFAULT_DELIVERY_LIMITS, type DeliveryLimits } from './defaults.js';
import { type DeliveryOutcome, outcomeOfStatus, reportDelivery } from './events.js';
import { type AdmittedWebhookUrl, pinnedLookup } from './ssrf.js';

export type { DeliveryLimits } from './defaults.js';

export { DEFAULT_DELIVERY_LIMITS } from './defaults.js';

/** What a receiver answered. A redirect is an answer like any other: it is never followed. */
export interface DeliveryAnswer {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly body: Buffer;
}

/** Why a delivery failed before a complete answer arrived. */
export class DeliveryFailed extends Error {
  constructor(
    readonly reason: 'timeout' | 'answer-too-large' | 'connection',
    message: string,
  ) {
    super(message);
    this.name = 'DeliveryFailed';
  }
  /** The request failed on a reused kept-alive connection before any answer (sent again once on a new one). */
  stale = false;
}

/** The metrics outcome of each way a delivery can fail (exhaustive: a new reason does not compile without one). */
const FAILURE_OUTCOME: { readonly [R in DeliveryFailed['reason']]: DeliveryOutcome } = {
  timeout: 'timeout',
  'answer-too-large': 'answer_too_large',
  connection: 'connection_error',
};

/**
 * POSTs `body` to an admitted webhook URL, connecting only to the addresses the SSRF check resolved (the URL's host
 * still names the TLS server and the `Host` header). No redirects, bounded in time and answer size.
 *
 * With `agent` (a {@link WebhookAgents} pool of the same pinned origin) the connection is kept alive and reused by the
 * next delivery to that origin; without, a fresh socket is opened and closed. A kept-alive connection can be closed by
 * the receiver just as a delivery is sent on it: a request that fails on a reused connection before any answer is sent
 * once more on a new one (the receiver saw nothing it answered; a receiver must accept a wake twice anyway).
 *
 * Each attempt's outcome and duration is reported on the `streamkeep:webhook:delivery` channel (`events.ts`).
 *
 * @throws DeliveryFailed on a timeout, an answer over the cap, or a connection error.
 */
export async function deliverWebhook(
  target: AdmittedWebhookUrl,
  body: Uint8Array,
  headers: Readonly<Record<string, string>>,
  limits: DeliveryLimits = DEFAULT_DELIVERY_LIMITS,
  agent?: Agent,
): Promise<DeliveryAnswer> {
  try {
    return await attempt(target, body, headers, limits, agent);
  } catch (err) {
    if (!(err instanceof DeliveryFailed) || !err.stale) throw err;
    return attempt(target, body, headers, limits, agent);
  }
}

function attempt(
  target: AdmittedWebhookUrl,
  body: Uint8Array,
  headers: Readonly<Record<string, string>>,
  limits: DeliveryLimits,
  agent: Agent | undefined,
): Promise<DeliveryAnswer> {
  const url = target.url;
  const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
  const started = performance.now();
  const seconds = () => (performance.now() - started) / 1000;
  return new Promise<DeliveryAnswer>((resolve, reject) => {
    let settled = false;
    const fail = (err: DeliveryFailed) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.destroy();
      reportDelivery({ outcome: FAILURE_OUTCOME[err.reason], seconds: seconds() });
      reject(err);
    };
    const req = send(
      {
        protocol: url.protocol,
        hostname: url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname,
        port: url.port === '' ? undefined : Number(url.port),
        path: `${url.pathname}${url.search}`,
        method: 'POST',
        agent: agent ?? false,
        lookup: pinnedLookup(target.addresses) as never,
        headers: {
          ...headers,
          'content-length': String(body.byteLength),
          connection: agent === undefined ? 'close' : 'keep-alive',
        },
      },
      (res: IncomingMessage) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.byteLength;
          if (size > limits.maxAnswerBytes) {
            fail(new DeliveryFailed('answer-too-large', `answer over ${limits.maxAnswerBytes} bytes`));
            return;
          }
          chunks.push(chunk);
        });
        res.on('end', () => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          reportDelivery({ outcome: outcomeOfStatus(res.statusCode ?? 0), seconds: seconds() });
          resolve({
            status: res.statusCode ?? 0,
            contentType: res.headers['content-type'],
            body: Buffer.concat(chunks),
          });
        });
        res.on('error', (err) => fail(new DeliveryFailed('connection', err.message)));
      },
    );
    const timer = setTimeout(
      () => fail(new DeliveryFailed('timeout', `no complete answer within ${limits.timeoutMs} ms`)),
      limits.timeoutMs,
    );
    let answered = false;
    req.on('response', () => {
      answered = true;
    });
    req.on('error', (err) => {
      const failure = new DeliveryFailed('connection', err.message);
      // Closed by the receiver while idle in the pool, before it answered anything: worth one more try.
      failure.stale = req.reusedSocket && !answered && !settled;
      fail(failure);
    });
    req.end(body);
  });
}
