#!/usr/bin/env node
// Rewrites the flag table of README.md from the settings table (src/settings/table.ts), between the
// `<!-- settings:start -->` and `<!-- settings:end -->` markers. Run after a build: `pnpm readme`.
// test/cli.test.ts fails while the README's table differs from what this writes.
import { readFile, writeFile } from 'node:fs/promises';
import { settingsMarkdown } from '../dist/index.js';

const path = new URL('../README.md', import.meta.url);
const readme = await readFile(path, 'utf8');
const marked = /(<!-- settings:start[^>]*-->\n)[\s\S]*?(<!-- settings:end -->)/;
if (!marked.test(readme)) {
  console.error('README.md has no <!-- settings:start --> … <!-- settings:end --> markers');
  process.exit(1);
}
const next = readme.replace(marked, (_, start, end) => `${start}${settingsMarkdown()}${end}`);
if (next !== readme) await writeFile(path, next);
console.log(next === readme ? 'README.md flag table is up to date' : 'README.md flag table rewritten');
