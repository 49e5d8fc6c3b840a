#!/usr/bin/env node
// Bundles the package in the current directory: each entry point its `exports` map or `bin` names (`./dist/<x>.js`,
// built from `./src/<x>.ts`) becomes one ES module, code shared between entries goes into `dist/chunks/`, and every bare import
// (`node:*`, dependencies, other workspace packages) stays an import. `tsc` still writes the declarations (`.d.ts`);
// this replaces the JavaScript it wrote, one file per source module, with the bundles and their source maps.
//
// Why: Node 20's ES module loader keeps roughly 70 KB of memory per module it loads. `@streamkeep/storage` is 24 small
// modules; imported as they are it added 2.2 MB to a process's anonymous RSS, bundled 0.4 MB (measured with
// `process.memoryUsage` after a forced GC), and every server loads it. Fewer files also start faster.
//
// Usage (from a package directory, after `tsc -p tsconfig.build.json`): `node ../../scripts/bundle.mjs`.
import { readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import { rolldown } from 'rolldown';

const pkg = JSON.parse(readFileSync('package.json', 'utf8'));
const input = {};
// Every entry point of the `exports` map, and the executables (`bin`), built the same way.
const entries = [
  ...Object.values(pkg.exports ?? {}).map((target) =>
    typeof target === 'string' ? target : target?.default,
  ),
  ...(typeof pkg.bin === 'string' ? [pkg.bin] : Object.values(pkg.bin ?? {})),
];
for (const file of entries) {
  const m = typeof file === 'string' ? /^\.\/dist\/(.+)\.js$/.exec(file) : null;
  if (m) input[m[1]] = `src/${m[1]}.ts`;
}
if (Object.keys(input).length === 0) throw new Error(`${pkg.name}: no ./dist/*.js entry in exports`);

/** Removes the JavaScript tsc wrote (and its maps); declarations stay. */
function removeJs(dir) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) removeJs(path);
    else if (/\.js(\.map)?$/.test(name)) rmSync(path);
  }
}

const build = await rolldown({
  input,
  platform: 'node',
  // Bare specifiers stay imports: a bundle must share `@streamkeep/storage` (its error class, its rules) with the
  // backends and the server, and dependencies are installed beside it.
  external: (id) => !id.startsWith('.') && !isAbsolute(id) && !id.startsWith('\0'),
  treeshake: true,
});
removeJs('dist');
await build.write({
  dir: 'dist',
  format: 'esm',
  entryFileNames: '[name].js',
  chunkFileNames: 'chunks/[name]-[hash].js',
  sourcemap: true,
  // Documentation comments stay in the declarations (what editors show) and in the sources the maps point to; in the
  // modules Node loads they were about a third of the text, which V8 keeps in memory for as long as the module lives.
  comments: { legal: true, annotation: true, jsdoc: false },
});
await build.close();
