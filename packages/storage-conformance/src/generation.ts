import type { StorageCapabilities } from '@streamkeep/storage';
import fc from 'fast-check';
import {
  CONTENT_TYPES,
  contentTypeArb,
  expiryArb,
  maxBytesArb,
  messagesArb,
  nonEmptyMessagesArb,
  offsetChoiceArb,
  optionalStreamSeqArb,
  producerIdArb,
  STREAM_NAMES,
  streamNameArb,
  timeStepArb,
} from './arbitraries.js';
import {
  AdvanceTimeCommand,
  CleanupCommand,
  type Cmd,
  DeleteCommand,
  ExistsCommand,
  HeadCommand,
  ListCommand,
  ReadCommand,
  ReopenCommand,
  SubscribeCommand,
} from './commands.js';
import { ARGUMENT_CASES } from './properties/argument-cases.js';
import { InvalidCallCommand } from './properties/arguments.js';
import {
  AppendCommand,
  CloseCommand,
  type ContentTypeChoice,
  CreateCommand,
  ForkCommand,
  type ForkOffsetChoice,
  ProducerAppendCommand,
  type ProducerEpochChoice,
  type ProducerSeqChoice,
} from './write-commands.js';

// The weights decide which states a run reaches. They were tuned with the outcome histogram (`verbose`) so that a
// default run of the model property meets every outcome code the model can produce — fencing, gaps, duplicates,
// config mismatches, limits, expiry, tombstones — while most commands still succeed and build up state.

const contentTypeChoiceArb: fc.Arbitrary<ContentTypeChoice> = fc.oneof(
  { weight: 12, arbitrary: fc.boolean().map((upper) => ({ kind: 'stream' as const, upper })) },
  { weight: 1, arbitrary: fc.constant({ kind: 'none' as const }) },
  { weight: 1, arbitrary: contentTypeArb.map((value) => ({ kind: 'raw' as const, value })) },
);

const closedArb = fc.nat(7).map((n) => n === 0);

/** Which commands a run may generate. */
export interface CommandSelection {
  readonly capabilities: StorageCapabilities;
  /** Include {@link ReopenCommand} (durable backends with a `reopen`). */
  readonly reopen: boolean;
}

/** A {@link CreateCommand} with random options: any name, type, expiry (when supported), closed flag and messages. */
export function createCommandArb(caps: StorageCapabilities): fc.Arbitrary<Cmd> {
  return fc
    .tuple(
      streamNameArb,
      fc.constantFrom(...CONTENT_TYPES),
      caps.expiry ? expiryArb : fc.constant({}),
      closedArb,
      messagesArb,
      fc.nat(19).map((n) => n === 0),
    )
    .map(([n, ct, e, c, m, conflict]) => new CreateCommand(n, ct, e, c, m, conflict));
}

/** A create that repeats the existing stream's own config: `created: false` (or a replacement when it expired). */
const matchingCreateArb: fc.Arbitrary<Cmd> = fc
  .tuple(streamNameArb, messagesArb)
  .map(([n, m]) => new CreateCommand(n, 'text/plain', {}, false, m, false, 'match'));

const producerEpochArb: fc.Arbitrary<ProducerEpochChoice> = fc.oneof(
  { weight: 10, arbitrary: fc.constant({ kind: 'stored' as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'bump' as const }) },
  { weight: 3, arbitrary: fc.constant({ kind: 'stale' as const }) },
  // -1 is malformed: INVALID_PRODUCER, checked before the stream is even looked up.
  { weight: 1, arbitrary: fc.integer({ min: -1, max: 2 }).map((epoch) => ({ kind: 'raw' as const, epoch })) },
);

const producerSeqArb: fc.Arbitrary<ProducerSeqChoice> = fc.oneof(
  { weight: 8, arbitrary: fc.constant({ kind: 'next' as const }) },
  { weight: 2, arbitrary: fc.constant({ kind: 'retry' as const }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 2 }).map((by) => ({ kind: 'older' as const, by })) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }).map((by) => ({ kind: 'gap' as const, by })) },
  { weight: 1, arbitrary: fc.integer({ min: 0, max: 4 }).map((seq) => ({ kind: 'raw' as const, seq })) },
);

const forkOffsetArb: fc.Arbitrary<ForkOffsetChoice> = fc.oneof(
  { weight: 2, arbitrary: fc.constant({ kind: 'default' as const }) },
  { weight: 1, arbitrary: fc.constant({ kind: 'start' as const }) },
  { weight: 3, arbitrary: fc.nat(8).map((index) => ({ kind: 'boundary' as const, index })) },
  { weight: 1, arbitrary: fc.constantFrom({ kind: 'beyond' as const }, { kind: 'now' as const }) },
);

/** The weighted command arbitraries of the model-based property, gated on the backend's capabilities. */
export function commandArbitraries(selection: CommandSelection): fc.Arbitrary<Cmd>[] {
  const caps = selection.capabilities;
  const expiry = caps.expiry ? expiryArb : fc.constant({});
  const out: { weight: number; arbitrary: fc.Arbitrary<Cmd> }[] = [
    { weight: 4, arbitrary: createCommandArb(caps) },
    { weight: 2, arbitrary: matchingCreateArb },
    {
      weight: 8,
      arbitrary: fc
        .tuple(
          streamNameArb,
          fc.oneof(
            { weight: 12, arbitrary: nonEmptyMessagesArb },
            { weight: 1, arbitrary: fc.constant<Uint8Array[]>([]) },
          ),
          contentTypeChoiceArb,
          optionalStreamSeqArb,
          fc.nat(11).map((n) => n === 0),
        )
        .map(([n, m, ct, s, c]) => new AppendCommand(n, m, ct, s, c)),
    },
    {
      weight: 1,
      arbitrary: fc.tuple(streamNameArb, optionalStreamSeqArb).map(([n, s]) => new CloseCommand(n, s)),
    },
    {
      weight: 5,
      arbitrary: fc
        .tuple(streamNameArb, offsetChoiceArb, maxBytesArb)
        .map(([n, f, b]) => new ReadCommand(n, f, b)),
    },
    { weight: 1, arbitrary: streamNameArb.map((n) => new HeadCommand(n)) },
    { weight: 1, arbitrary: streamNameArb.map((n) => new ExistsCommand(n)) },
    { weight: 1, arbitrary: streamNameArb.map((n) => new DeleteCommand(n)) },
    { weight: 1, arbitrary: streamNameArb.map((n) => new SubscribeCommand(n)) },
    { weight: 1, arbitrary: fc.constant(new CleanupCommand()) },
    { weight: 2, arbitrary: timeStepArb.map((ms) => new AdvanceTimeCommand(ms)) },
  ];
  if (caps.producers) {
    out.push({
      weight: 7,
      arbitrary: fc
        .tuple(
          streamNameArb,
          producerIdArb,
          producerEpochArb,
          producerSeqArb,
          fc.oneof(
            { weight: 8, arbitrary: nonEmptyMessagesArb },
            { weight: 1, arbitrary: fc.constant<Uint8Array[]>([]) },
          ),
          contentTypeChoiceArb,
          optionalStreamSeqArb,
          fc.nat(15).map((n) => n === 0),
        )
        .map(([n, id, e, ps, m, ct, s, c]) => new ProducerAppendCommand(n, id, e, ps, m, ct, s, c)),
    });
  }
  if (caps.forks) {
    out.push({
      weight: 3,
      arbitrary: fc
        .tuple(
          streamNameArb,
          streamNameArb,
          forkOffsetArb,
          fc.oneof(
            { weight: 4, arbitrary: fc.constant(0) },
            { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) },
          ),
          fc.constantFrom('inherit' as const, 'inherit' as const, 'same' as const, 'other' as const),
          expiry,
          closedArb,
          messagesArb,
        )
        .map(([n, src, o, sub, ct, e, c, m]) => new ForkCommand(n, src, o, sub, ct, e, c, m)),
    });
  }
  if (caps.listStreams) {
    const listOptionsArb = fc.oneof(
      { weight: 3, arbitrary: fc.constant({}) },
      {
        weight: 2,
        arbitrary: fc.record(
          {
            prefix: fc.constantFrom('a', '\uFFFD'),
            after: fc.constantFrom(...STREAM_NAMES),
            limit: fc.integer({ min: 0, max: 3 }),
          },
          { requiredKeys: [] },
        ),
      },
    );
    out.push({ weight: 1, arbitrary: listOptionsArb.map((o) => new ListCommand(o)) });
  }
  out.push({
    weight: 2,
    arbitrary: fc
      .tuple(fc.nat(ARGUMENT_CASES.length - 1), streamNameArb)
      .map(([i, n]) => new InvalidCallCommand(i, n)),
  });
  if (selection.reopen) out.push({ weight: 1, arbitrary: fc.constant(new ReopenCommand()) });
  // fc.commands picks uniformly among its arbitraries; weights become repetitions.
  return out.flatMap(({ weight, arbitrary }) => Array.from({ length: weight }, () => arbitrary));
}
