/**
 * `iotcore-relay keys`: generate a gateway key pair and print the public key to register on the gateway device in
 * ClearBlade IoT Core, with the credential format name the registry expects (`ES256_PEM`, `RSA_PEM`, and the
 * `_X509_PEM` variants for certificates).
 *
 * The private key goes to a mode-0600 file, or to stdout only when `--print-private` asks for it, so running the
 * command in a CI log or a shared terminal does not leak it by default. Files are never overwritten without
 * `--force`: overwriting a registered gateway's key locks the gateway out until the new public key is registered.
 *
 * @example
 * iotcore-relay keys --alg ES256 --out ./keys --name gw-1 --secret-json gw-1
 */
import { lstat, mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import type { KeyFormat } from '../emulator/registry.js';
import { deviceIdProblem } from '../lib/iotcore/device-id.js';
import { generateGatewayKeyPair } from '../lib/keys/key-pair.js';
import { DEFAULT_CERTIFICATE_DAYS, selfSignedCertificate } from '../lib/keys/self-signed-certificate.js';
import { GATEWAY_KEY_ALGORITHMS, type GatewayKeyAlgorithm } from '../lib/keys/signing-key.js';

export interface CommandOutput {
  stdout: { write(text: string): unknown };
  stderr: { write(text: string): unknown };
}

export const KEYS_USAGE = `usage: iotcore-relay keys [options]

Generate a gateway key pair and print the public key to register on the gateway in ClearBlade IoT Core.

options:
  --alg RS256|ES256          key type: ES256 = EC P-256 (default), RS256 = RSA 2048
  --out <dir>                write <name>_private.pem (PKCS#8, mode 0600) and <name>_public.pem into <dir>
  --name <name>              file name prefix (default: the --secret-json gateway ID, else "ec" or "rsa")
  --force                    overwrite existing files
  --x509                     also make a self-signed certificate (format ES256_X509_PEM / RSA_X509_PEM),
                             written to <name>_cert.pem with --out
  --days <n>                 validity of the --x509 certificate in days (default ${DEFAULT_CERTIFICATE_DAYS})
  --secret-json <gatewayId>  the value to store in the Secrets Manager secret for this gateway:
                             written to <name>_secret.json (mode 0600) with --out, printed with --print-private
  --print-private            print the private key (or the --secret-json value) on stdout
  -h, --help                 show this help

Without --out, --print-private is required: the private key would otherwise be lost.`;

/** File name prefixes: one path segment, no leading dot, nothing a shell or a path would reinterpret. */
const FILE_NAME = /^[A-Za-z0-9][A-Za-z0-9._+~%-]{0,127}$/;

interface KeysOptions {
  alg: GatewayKeyAlgorithm;
  out: string | undefined;
  name: string;
  force: boolean;
  x509: boolean;
  days: number;
  secretFor: string | undefined;
  printPrivate: boolean;
}

interface OutputFile {
  path: string;
  content: string;
  mode: number;
  what: string;
}

class UsageError extends Error {}

export async function keysCommand(argv: string[], io: CommandOutput = process): Promise<number> {
  let options: KeysOptions | 'help';
  try {
    options = parseKeysArgs(argv);
  } catch (e) {
    if (!(e instanceof UsageError) && !isParseArgsError(e)) throw e;
    io.stderr.write(`iotcore-relay keys: ${(e as Error).message}\n\n${KEYS_USAGE}\n`);
    return 2;
  }
  if (options === 'help') {
    io.stdout.write(`${KEYS_USAGE}\n`);
    return 0;
  }

  const pair = await generateGatewayKeyPair(options.alg);
  const keyFormat: KeyFormat = options.alg === 'RS256' ? 'RSA_PEM' : 'ES256_PEM';
  const certFormat: KeyFormat = options.alg === 'RS256' ? 'RSA_X509_PEM' : 'ES256_X509_PEM';
  const certificate = options.x509
    ? await selfSignedCertificate(pair, { commonName: options.name, days: options.days })
    : undefined;
  // The map shape (gateway ID -> key), so entries for several gateways merge into one secret without rework.
  const secretJson =
    options.secretFor === undefined
      ? undefined
      : `${JSON.stringify({ [options.secretFor]: { privateKey: pair.privateKeyPem, algorithm: options.alg } }, null, 2)}\n`;

  if (options.out !== undefined) {
    const files: OutputFile[] = [
      outputFile(options, '_private.pem', pair.privateKeyPem, 0o600, 'private key, PKCS#8'),
      outputFile(options, '_public.pem', pair.publicKeyPem, 0o644, `public key, ${keyFormat}`),
    ];
    if (certificate !== undefined) {
      files.push(outputFile(options, '_cert.pem', certificate, 0o644, `certificate, ${certFormat}`));
    }
    if (secretJson !== undefined) {
      files.push(outputFile(options, '_secret.json', secretJson, 0o600, 'Secrets Manager secret value'));
    }
    const existing = options.force ? [] : await existingPaths(files);
    if (existing.length > 0) {
      io.stderr.write(
        `iotcore-relay keys: refusing to overwrite ${existing.join(', ')}; nothing was written. ` +
          'Use --force to replace them (a gateway whose key is replaced cannot connect until its new public key ' +
          'is registered).\n',
      );
      return 1;
    }
    await mkdir(options.out, { recursive: true, mode: 0o700 });
    for (const file of files) {
      await writeNewFile(file, options.force);
      io.stderr.write(`wrote ${file.path} (${file.what}, mode ${file.mode.toString(8).padStart(4, '0')})\n`);
    }
  }

  io.stdout.write(`format: ${keyFormat}\n${pair.publicKeyPem}`);
  if (certificate !== undefined) {
    io.stdout.write(`\nformat: ${certFormat}\n${certificate}${certificate.endsWith('\n') ? '' : '\n'}`);
  }
  if (options.printPrivate) {
    if (secretJson !== undefined) {
      io.stdout.write(`\nSecrets Manager secret value for gateway ${options.secretFor}:\n${secretJson}`);
    } else {
      io.stdout.write(`\nprivate key (PKCS#8, keep it secret):\n${pair.privateKeyPem}`);
    }
  }
  if (secretJson !== undefined && options.out !== undefined) {
    const secretFile = join(options.out, `${options.name}_secret.json`);
    io.stderr.write(
      `store it with: aws secretsmanager create-secret --name <secret> --secret-string file://${secretFile}\n` +
        '(to share one secret between gateways, merge the entries into one JSON object keyed by gateway ID)\n',
    );
  }
  return 0;
}

function parseKeysArgs(argv: string[]): KeysOptions | 'help' {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    allowPositionals: false,
    options: {
      alg: { type: 'string' },
      out: { type: 'string' },
      name: { type: 'string' },
      force: { type: 'boolean' },
      x509: { type: 'boolean' },
      days: { type: 'string' },
      'secret-json': { type: 'string' },
      'print-private': { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help === true) return 'help';

  const alg = values.alg ?? 'ES256';
  if (!(GATEWAY_KEY_ALGORITHMS as readonly string[]).includes(alg)) {
    throw new UsageError(`--alg must be RS256 or ES256 (got ${JSON.stringify(alg)})`);
  }
  const secretFor = values['secret-json'];
  if (secretFor !== undefined) {
    const problem = deviceIdProblem(secretFor);
    if (problem !== undefined) throw new UsageError(`--secret-json gateway ID ${problem}`);
  }
  const name = values.name ?? secretFor ?? (alg === 'RS256' ? 'rsa' : 'ec');
  if (!FILE_NAME.test(name)) {
    throw new UsageError(
      '--name must be one file name: letters, digits and - . _ + ~ %, starting with a letter or digit',
    );
  }
  let days = DEFAULT_CERTIFICATE_DAYS;
  if (values.days !== undefined) {
    if (values.x509 !== true) throw new UsageError('--days applies only with --x509');
    days = /^\d{1,5}$/.test(values.days) ? Number(values.days) : 0;
    if (days < 1) {
      throw new UsageError(`--days must be a whole number of days from 1 to 99999 (got ${JSON.stringify(values.days)})`);
    }
  }
  const out = values.out;
  if (out !== undefined && out.trim() === '') throw new UsageError('--out needs a directory');
  const printPrivate = values['print-private'] === true;
  if (out === undefined && !printPrivate) {
    throw new UsageError('give --out <dir> to keep the private key in a file, or --print-private to print it');
  }
  if (values.force === true && out === undefined) throw new UsageError('--force applies only with --out');
  return {
    alg: alg as GatewayKeyAlgorithm,
    out,
    name,
    force: values.force === true,
    x509: values.x509 === true,
    days,
    secretFor,
    printPrivate,
  };
}

function outputFile(options: KeysOptions, suffix: string, content: string, mode: number, what: string): OutputFile {
  return { path: join(options.out ?? '.', `${options.name}${suffix}`), content, mode, what };
}

function isParseArgsError(e: unknown): boolean {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.startsWith('ERR_PARSE_ARGS_');
}

async function existingPaths(files: readonly OutputFile[]): Promise<string[]> {
  const found: string[] = [];
  for (const file of files) {
    try {
      await lstat(file.path);
      found.push(file.path);
    } catch (e) {
      if ((e as { code?: unknown }).code !== 'ENOENT') throw e;
    }
  }
  return found;
}

/**
 * Creates the file afresh (`wx`), removing an old one first under --force: writing over an existing file would keep
 * its old, possibly wider, mode, and would follow a symlink planted where the key is expected.
 */
async function writeNewFile(file: OutputFile, replace: boolean): Promise<void> {
  if (replace) await rm(file.path, { force: true });
  const handle = await open(file.path, 'wx', file.mode);
  try {
    // The creation mode is filtered by the umask; set it exactly, so 0600 is 0600 and 0644 readable as intended.
    await handle.chmod(file.mode);
    await handle.writeFile(file.content, 'utf8');
  } finally {
    await handle.close();
  }
}
