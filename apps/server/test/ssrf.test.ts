import { createServer, request } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import {
  type AddressClass,
  admitWebhookUrl,
  classifyAddress,
  DEFAULT_WEBHOOK_URL_POLICY,
  pinnedLookup,
  type ResolvedAddress,
  type Resolver,
  WebhookUrlRejected,
} from '../src/webhooks/ssrf.js';

// No test here resolves a real name or connects anywhere but 127.0.0.1: names go through an injected resolver, and
// a refusal is decided before any connection is attempted.

const CLASSES: ReadonlyArray<readonly [string, AddressClass]> = [
  // IPv4
  ['0.0.0.0', 'unspecified'],
  ['0.1.2.3', 'unspecified'],
  ['10.0.0.1', 'private'],
  ['10.255.255.255', 'private'],
  ['100.64.0.1', 'private'],
  ['100.127.255.254', 'private'],
  ['100.128.0.1', 'public'],
  ['127.0.0.1', 'loopback'],
  ['127.1.2.3', 'loopback'],
  ['169.254.169.254', 'link-local'],
  ['172.15.255.255', 'public'],
  ['172.16.0.1', 'private'],
  ['172.31.255.255', 'private'],
  ['172.32.0.1', 'public'],
  ['192.0.0.8', 'reserved'],
  ['192.0.2.1', 'reserved'],
  ['192.168.1.1', 'private'],
  ['198.18.0.1', 'reserved'],
  ['198.51.100.7', 'reserved'],
  ['203.0.113.9', 'reserved'],
  ['224.0.0.1', 'multicast'],
  ['239.255.255.250', 'multicast'],
  ['240.0.0.1', 'reserved'],
  ['255.255.255.255', 'reserved'],
  ['8.8.8.8', 'public'],
  ['93.184.216.34', 'public'],
  // IPv6
  ['::', 'unspecified'],
  ['::1', 'loopback'],
  ['fe80::1', 'link-local'],
  ['fe80::1%eth0', 'link-local'],
  ['febf:ffff::1', 'link-local'],
  ['fc00::1', 'private'],
  ['fd12:3456:789a::1', 'private'],
  ['fec0::1', 'reserved'],
  ['ff02::1', 'multicast'],
  ['2001:db8::1', 'reserved'],
  ['100::1', 'reserved'],
  ['2606:4700:4700::1111', 'public'],
  ['2001:4860:4860::8888', 'public'],
  // IPv4 inside IPv6
  ['::ffff:127.0.0.1', 'loopback'],
  ['::ffff:7f00:1', 'loopback'],
  ['::ffff:10.0.0.1', 'private'],
  ['::ffff:169.254.169.254', 'link-local'],
  ['::ffff:8.8.8.8', 'public'],
  ['64:ff9b::10.1.2.3', 'private'],
  ['64:ff9b::a9fe:a9fe', 'link-local'],
  ['2002:0a00:0001::1', 'private'],
  ['2002:0808:0808::1', 'public'],
  ['2001:0:4136:e378:8000:63bf:f5ff:fffe', 'private'], // Teredo client 10.0.0.1
];

const never: Resolver = async (host) => {
  throw new Error(`the test resolver was asked for ${host}`);
};
const fixed =
  (answers: Record<string, readonly ResolvedAddress[]>): Resolver =>
  async (host) => {
    const a = answers[host];
    if (a === undefined)
      throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return a;
  };
const v4 = (address: string): ResolvedAddress => ({ address, family: 4 });
const v6 = (address: string): ResolvedAddress => ({ address, family: 6 });

async function reason(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(WebhookUrlRejected);
    expect((err as WebhookUrlRejected).code).toBe('WEBHOOK_URL_REJECTED');
    return (err as WebhookUrlRejected).reason;
  }
  throw new Error('admitted');
}

describe('webhook URL rules (SSRF)', () => {
  it.each(CLASSES)('classifies %s as %s', (address, cls) => {
    expect(classifyAddress(address)).toBe(cls);
  });

  it.each(CLASSES.filter(([, cls]) => cls !== 'public' && cls !== 'loopback'))(
    'refuses an https URL whose host is %s (%s), before any connection',
    async (address, cls) => {
      const host = address.includes(':') ? `[${address.replace('%', '%25')}]` : address;
      const why = await reason(admitWebhookUrl(`https://${host}/hook`, DEFAULT_WEBHOOK_URL_POLICY, never));
      // A zone id (fe80::1%eth0) is not valid in a URL at all: refused by the parser instead.
      expect(why).toContain(address.includes('%') ? 'URL' : cls);
    },
  );

  it('refuses a name when any of its addresses is private, link-local or unspecified', async () => {
    const resolve = fixed({
      'only-private.test': [v4('10.1.2.3')],
      'mixed.test': [v4('93.184.216.34'), v6('fd00::5')],
      'metadata.test': [v4('169.254.169.254')],
      'mapped.test': [v6('::ffff:192.168.0.10')],
      'zero.test': [v4('0.0.0.0')],
    });
    for (const host of ['only-private.test', 'mixed.test', 'metadata.test', 'mapped.test', 'zero.test']) {
      await reason(admitWebhookUrl(`https://${host}/x`, DEFAULT_WEBHOOK_URL_POLICY, resolve));
    }
    expect(
      await reason(admitWebhookUrl('https://nowhere.test/', DEFAULT_WEBHOOK_URL_POLICY, resolve)),
    ).toContain('does not resolve');
  });

  it('admits https to public addresses and pins every address the check saw', async () => {
    const resolve = fixed({ 'hooks.example.test': [v4('93.184.216.34'), v6('2606:2800:220:1::1')] });
    const ok = await admitWebhookUrl(
      'https://hooks.example.test:8443/in',
      DEFAULT_WEBHOOK_URL_POLICY,
      resolve,
    );
    expect(ok.url.host).toBe('hooks.example.test:8443');
    expect(ok.addresses).toEqual([v4('93.184.216.34'), v6('2606:2800:220:1::1')]);
    const ip = await admitWebhookUrl('https://8.8.8.8/', DEFAULT_WEBHOOK_URL_POLICY, never);
    expect(ip.addresses).toEqual([v4('8.8.8.8')]);
  });

  it('allows http to loopback only, and loopback only when the policy does', async () => {
    for (const url of [
      'http://127.0.0.1:9/hook',
      'http://localhost:9/',
      'http://[::1]:9/',
      'http://a.localhost/',
    ]) {
      await expect(admitWebhookUrl(url, DEFAULT_WEBHOOK_URL_POLICY, never)).resolves.toBeDefined();
    }
    const resolve = fixed({ 'public.test': [v4('93.184.216.34')] });
    expect(
      await reason(admitWebhookUrl('http://public.test/', DEFAULT_WEBHOOK_URL_POLICY, resolve)),
    ).toContain('https');
    const strict = { ...DEFAULT_WEBHOOK_URL_POLICY, allowLoopback: false };
    expect(await reason(admitWebhookUrl('https://127.0.0.1/', strict, never))).toContain('loopback');
    expect(await reason(admitWebhookUrl('http://localhost/', strict, never))).toContain('loopback');
  });

  it('admits private ranges only when the operator allows them; link-local never', async () => {
    const open = { ...DEFAULT_WEBHOOK_URL_POLICY, allowPrivate: true };
    await expect(admitWebhookUrl('https://10.0.0.1/', open, never)).resolves.toBeDefined();
    await expect(admitWebhookUrl('https://[fd00::1]/', open, never)).resolves.toBeDefined();
    await reason(admitWebhookUrl('https://169.254.169.254/', open, never));
    await reason(admitWebhookUrl('https://[fe80::1]/', open, never));
    await reason(admitWebhookUrl('https://0.0.0.0/', open, never));
    // Private still needs https.
    expect(await reason(admitWebhookUrl('http://10.0.0.1/', open, never))).toContain('https');
  });

  it('refuses other schemes, credentials, and URLs that are not absolute', async () => {
    expect(
      await reason(admitWebhookUrl('ftp://93.184.216.34/', DEFAULT_WEBHOOK_URL_POLICY, never)),
    ).toContain('scheme');
    expect(await reason(admitWebhookUrl('file:///etc/passwd', DEFAULT_WEBHOOK_URL_POLICY, never))).toContain(
      'scheme',
    );
    expect(
      await reason(admitWebhookUrl('https://u:p@8.8.8.8/', DEFAULT_WEBHOOK_URL_POLICY, never)),
    ).toContain('credentials');
    expect(await reason(admitWebhookUrl('/relative', DEFAULT_WEBHOOK_URL_POLICY, never))).toContain(
      'absolute',
    );
  });

  it('sees through IPv4 spellings the URL parser normalises (decimal, hex, short forms)', async () => {
    for (const host of ['2130706433', '0x7f.1', '127.1', '0177.0.0.1']) {
      const ok = await admitWebhookUrl(`http://${host}/`, DEFAULT_WEBHOOK_URL_POLICY, never);
      expect(ok.addresses[0]?.address).toMatch(/^127\./);
    }
    for (const host of ['167772161', '0xa.0.0.1', '10.1']) {
      expect(await reason(admitWebhookUrl(`https://${host}/`, DEFAULT_WEBHOOK_URL_POLICY, never))).toContain(
        'private',
      );
    }
  });

  it('connects to the pinned address, whatever the URL host resolves to at connection time', async () => {
    const server = createServer((_req, res) => res.end('pinned'));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      // The URL's host is a name the system resolver cannot know; the pinned lookup answers 127.0.0.1.
      const body = await new Promise<string>((resolve, reject) => {
        const req = request(
          { host: 'receiver.invalid', port, path: '/', lookup: pinnedLookup([v4('127.0.0.1')]) as never },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (c) => (text += c));
            res.on('end', () => resolve(text));
          },
        );
        req.on('error', reject);
        req.end();
      });
      expect(body).toBe('pinned');
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
