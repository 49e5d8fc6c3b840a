/** Writes one JSON line to stdout, in the pipe before it returns. */
export function say(o: unknown): void;
/** A small seeded generator, so that a failing schedule can be replayed from its seed. */
export function mulberry32(seed: number): () => number;
