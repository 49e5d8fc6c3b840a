// A crowd of HTTP clients in a process of its own, driven over IPC by test/burst.test.ts: each loopback connection
// costs a file descriptor at both ends, so 10,000 readers and the server they read from do not fit in one process
// under a 20,000-descriptor limit.
//
// Parent → child: { urls, localAddresses?, window?, method?, body?, headers? } to start: one request per URL (GET
// unless told), each on a socket of its own, with at most `window` requests not yet written at a time (so that a busy
// machine sends every request head promptly after its connection opens, rather than opening 10,000 connections first
// and tripping the server's headers timeout).
// Child → parent: { sent } once every request is written; { done, statuses, bodies, retryAfter, errors, firstAt,
// lastAt } once every request is answered or failed (Date.now() of the first and last answer).
import { request } from 'node:http';

function run({ urls, localAddresses = [], window = 256, method = 'GET', body, headers = {} }) {
  const statuses = {};
  const bodies = {};
  const retryAfter = {};
  const errors = {};
  const count = (table, key) => {
    table[key] = (table[key] ?? 0) + 1;
  };
  let firstAt = 0;
  let lastAt = 0;
  let answered = 0;
  let written = 0;
  let next = 0;

  const start = () => {
    const i = next++;
    if (i >= urls.length) return;
    let wrote = false;
    let settled = false;
    const flushed = () => {
      if (wrote) return;
      wrote = true;
      if (++written === urls.length) process.send({ sent: written });
      start();
    };
    const settle = (key, table) => {
      if (settled) return;
      settled = true;
      count(table, key);
      flushed();
      if (++answered === urls.length) {
        process.send({ done: true, statuses, bodies, retryAfter, errors, firstAt, lastAt });
      }
    };
    const req = request(
      urls[i],
      // An explicit local address costs a bind() whose port search grows with the sockets already bound; leave it
      // to connect() unless asked.
      localAddresses.length === 0
        ? { agent: false, method, headers }
        : { agent: false, method, headers, localAddress: localAddresses[i % localAddresses.length] },
      (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => {
          const now = Date.now();
          if (firstAt === 0) firstAt = now;
          lastAt = now;
          if (res.statusCode === 200) count(bodies, Buffer.concat(chunks).toString());
          else if (res.statusCode === 503) count(retryAfter, res.headers['retry-after'] ?? 'none');
          settle(res.statusCode, statuses);
        });
        res.on('error', (err) => settle(err.code ?? err.message, errors));
      },
    );
    req.on('error', (err) => settle(err.code ?? err.message, errors));
    req.end(body, flushed);
  };
  for (let k = 0; k < window; k++) start();
}

process.on('message', (msg) => run(msg));
