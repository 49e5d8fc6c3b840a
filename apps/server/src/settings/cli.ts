import { readFileSync } from 'node:fs';
import { Command, InvalidArgumentError, Option } from 'commander';
import { postgresUrl } from './parsers.js';
import { isBoolean, SETTINGS, type ServerConfig, type Setting } from './table.js';

/**
 * The package version, for `--version`: read from the nearest `package.json` of `@streamkeep/server` above this module,
 * which is `src/settings/` when run from source and a file of the bundled `dist/` once built.
 */
export function serverVersion(): string {
  for (let dir = new URL('.', import.meta.url); ; dir = new URL('..', dir)) {
    try {
      const pkg = JSON.parse(readFileSync(new URL('package.json', dir), 'utf8')) as {
        name?: string;
        version: string;
      };
      if (pkg.name === '@streamkeep/server') return pkg.version;
    } catch {
      // none here: look further up
    }
    if (dir.pathname === '/') throw new Error('the package.json of @streamkeep/server was not found');
  }
}

/** commander stores a parsed `undefined` as "not given" (the environment would then win over the flag): this stands in. */
const UNSET = Symbol('unset');

/** A bad value of a secret setting, reported after parsing without the value (commander's message quotes it). */
class Refused {
  constructor(readonly message: string) {}
}

/** The default as the README states it; `--help` also shows this machine's figure for sized defaults. */
function describeDefault(s: Setting<unknown>, forHelp = false): string {
  if (forHelp && s.defaultText?.startsWith('sized') === true) return `${String(s.default)}, ${s.defaultText}`;
  if (s.defaultText !== undefined) return s.defaultText;
  if (s.default === undefined) return 'none';
  return String(s.default);
}

/**
 * The `streamkeep` command, one option per setting: its flag, environment variable (commander's `.env()`), parser or
 * choices, and default. Precedence is commander's: flag, then variable, then default. Parse with
 * {@link parseServerConfig}.
 */
export function buildCommand(): Command {
  const cmd = new Command('streamkeep')
    .description(
      'Serve Durable Streams over HTTP on a Streamkeep storage backend.\n' +
        'Every flag has an environment variable; a flag given on the command line wins over the variable.',
    )
    .version(serverVersion(), '-V, --version', 'print the version and exit')
    .helpOption('-h, --help', 'show this help')
    .allowExcessArguments(false);
  for (const setting of Object.values(SETTINGS) as Setting<unknown>[]) {
    const opt = new Option(setting.flags, setting.help)
      .env(setting.env)
      .default(setting.default, describeDefault(setting, true));
    if (setting.choices !== undefined) {
      opt.choices(setting.choices as readonly string[]);
    } else {
      const parse = setting.parse!;
      opt.argParser((raw: string) => {
        if (!setting.secret) return parse(raw) ?? UNSET;
        try {
          return parse(raw) ?? UNSET;
        } catch (err) {
          return new Refused((err as Error).message);
        }
      });
    }
    cmd.addOption(opt);
    if (isBoolean(setting)) {
      const name = setting.flags.split(' ')[0]!.slice(2);
      cmd.addOption(new Option(`--no-${name}`, `turn ${name} off`).hideHelp());
    }
  }
  return cmd;
}

/**
 * Resolves the configuration from `argv` and `process.env`: defaults, overridden by environment variables,
 * overridden by flags. `DATABASE_URL` stands in for a missing `--postgres-url`.
 *
 * @throws commander's `CommanderError`: unknown flags, bad values (the message names the flag or variable), and
 *   `--help` / `--version` (`exitCode` 0, after printing); `InvalidArgumentError` for checks across settings.
 */
export function parseServerConfig(argv: readonly string[], configure?: (cmd: Command) => void): ServerConfig {
  // Errors are thrown, not printed with an exit: the caller decides (main.ts prints one line and exits 2).
  const cmd = buildCommand()
    .exitOverride()
    .configureOutput({ outputError: () => {} });
  configure?.(cmd);
  cmd.parse(argv as string[], { from: 'user' });
  const opts = cmd.opts();
  const out: Record<string, unknown> = {};
  for (const [key, setting] of Object.entries(SETTINGS) as [string, Setting<unknown>][]) {
    // Config keys carry units (`longPollTimeoutMs`) that the flags leave out (`--long-poll-timeout`).
    const attribute = new Option(setting.flags).attributeName();
    const value = opts[attribute];
    if (value instanceof Refused) {
      const from = cmd.getOptionValueSource(attribute) === 'env' ? setting.env : setting.flags.split(' ')[0];
      throw new InvalidArgumentError(`${from}: ${value.message}`);
    }
    out[key] = value === UNSET ? undefined : value;
  }
  const config = out as unknown as { -readonly [K in keyof ServerConfig]: ServerConfig[K] };
  if (config.postgresUrl === undefined) {
    const fallback = process.env.DATABASE_URL;
    if (fallback !== undefined && fallback !== '') {
      try {
        config.postgresUrl = postgresUrl(fallback);
      } catch (err) {
        if (config.storage === 'postgres')
          throw new InvalidArgumentError(`DATABASE_URL: ${(err as Error).message}`);
      }
    }
  }
  if (config.storage === 'postgres' && config.postgresUrl === undefined) {
    throw new InvalidArgumentError(
      '--storage postgres needs a connection URL: --postgres-url, STREAMKEEP_POSTGRES_URL or DATABASE_URL',
    );
  }
  return config;
}

/** The README's flag table, generated from {@link SETTINGS} (`pnpm readme` writes it; a test fails when it is stale). */
export function settingsMarkdown(): string {
  const rows = ['| flag | environment variable | default | what it does |', '|---|---|---|---|'];
  for (const setting of Object.values(SETTINGS) as Setting<unknown>[]) {
    const flag = setting.flags.replace(' [bool]', '');
    const flags = isBoolean(setting) ? `\`${flag}\`, \`--no-${flag.slice(2)}\`` : `\`${flag}\``;
    const choices = setting.choices === undefined ? '' : ` (${setting.choices.join(', ')})`;
    const help = `${setting.help}${choices}`.replace(/\|/g, '\\|');
    rows.push(`| ${flags} | \`${setting.env}\` | ${describeDefault(setting)} | ${help} |`);
  }
  return `${rows.join('\n')}\n`;
}
