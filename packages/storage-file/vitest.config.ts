import { defineProject } from 'vitest/config';

export default defineProject({
  test: {
    include: ['test/**/*.test.ts'],
    // CI runs every package's suite at once on 2 cores: budgets are set for 3× an idle machine, and a generous margin
    // on top. Tests that need more (the crash test) set their own.
    testTimeout: 60_000,
    hookTimeout: 60_000,
  },
});
