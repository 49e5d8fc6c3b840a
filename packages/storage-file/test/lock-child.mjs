// Lock-test child: takes a root's lock and holds it until the parent kills it. With `host`, it passes itself off as a
// process on another host (a container restarted under a new hostname). Runs the compiled lock module the parent names.

import { syncBuiltinESMExports } from 'node:module';
import os from 'node:os';

const { module, root, host, staleMs } = JSON.parse(process.argv[2]);
if (host !== undefined) {
  os.hostname = () => host;
  syncBuiltinESMExports();
}
const { acquireRootLock } = await import(module);
const { nodeFileSystem } = await import(module.replace(/lock\.js$/, 'fs.js'));
await acquireRootLock(nodeFileSystem, root, { staleMs });
process.stdout.write('locked\n');
setInterval(() => undefined, 60_000);
