import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';

// Every code example in the README that imports something is a verbatim copy of a file under test/examples/, which
// vitest runs like any other test: an example that drifts from its file, or stops working, fails here or there.

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8');
const blocks = [...readme.matchAll(/(?:<!-- example: (\S+) -->\n\n)?```ts\n([\s\S]*?)```/g)];

describe('README examples', () => {
  it('has examples', () => {
    expect(blocks.filter(([, path]) => path !== undefined).length).toBeGreaterThanOrEqual(4);
  });

  for (const [, path, code] of blocks) {
    if (!/^import /m.test(code ?? '')) continue;
    it(`${path ?? code?.split('\n')[0]} is a copy of a tested file`, () => {
      expect(
        path,
        'a README example with imports must name its file: <!-- example: test/examples/… -->',
      ).toBeDefined();
      const file = readFileSync(new URL(`../${path}`, import.meta.url), 'utf8');
      expect(code?.trimEnd()).toBe(file.trimEnd());
    });
  }
});
