import { setFlagsFromString } from 'node:v8';

/**
 * V8's heap growing factor for a `streamkeep` process serving the memory backend, as `1 + percent / 100`.
 *
 * Why: the memory backend keeps every message body in an `ArrayBuffer` outside the JavaScript heap, and V8 counts
 * external memory allocated since the last full collection against an old-generation limit that it sizes from the
 * JavaScript heap alone (~10 MB here), with a factor of about 2.5. A server retaining 64 KiB bodies therefore ran a
 * full collection every ~200 appends (5–6 per 1,000, 2–30 ms each), whatever the data already held. With a factor of
 * 6 the limit leaves room for ~40 MB of new bodies: 1.6 full collections per 1,000 such appends, and the p99
 * acknowledgement of one writer's 64 KiB appends fell from 3.3–3.5 to 2.2–2.35 ms on the benchmark machine (the
 * 0.1.0-era server: 2.2–2.6 ms). The cost is JavaScript garbage of up to five times the live heap between full
 * collections, small beside a data set the backend keeps in memory anyway.
 */
export const MEMORY_BACKEND_HEAP_GROWING_PERCENT = 500;

/**
 * Applies {@link MEMORY_BACKEND_HEAP_GROWING_PERCENT} to this process. Only the `streamkeep` binary calls it, and only
 * for the memory backend: an application embedding the server owns its process's V8 settings.
 */
export function tuneHeapForMemoryBackend(): void {
  setFlagsFromString(`--heap-growing-percent=${MEMORY_BACKEND_HEAP_GROWING_PERCENT}`);
}
