import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    include: ['test/**/*.test.ts'],
    // One file at a time on any machine: the soak and the fuzzing load the CPU, and the official suite has timing
    // tests (long-poll timeouts) that must not share it.
    fileParallelism: false,
  },
});
