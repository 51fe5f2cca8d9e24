/**
 * `iotcore-relay send`: posts test readings to an ingest URL the way a device would, and prints each answer.
 * The device authenticates with a JWT signed by its private key (`--key`, `--project`), or with its device key
 * (`--device-key`, or derived from the master secret with `--master-file`). `--print-device-key` prints the key a
 * device must be given, for provisioning.
 *
 * @example
 * iotcore-relay send --url http://127.0.0.1:8080 --device pump-0042 --master-file .local/device-master --count 3
 * iotcore-relay send --url https://api.example.com --device pump-0042 --key pump.pem --project demo-project --state --data on
 * iotcore-relay send --print-device-key pump-0042 --master-file .local/device-master
 * iotcore-relay send --lorawan ttn --url http://127.0.0.1:3000 --secrets-file .local/lorawan-secrets.json (cli/lorawan-send.ts)
 */
import { readFile } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { parseArgs } from 'node:util';
import { deriveDeviceKey, masterKeyFromText } from '../lib/auth/index.js';
import { RelayError } from '../lib/errors.js';
import { assertDeviceId } from '../lib/iotcore/device-id.js';
import { MAX_JWT_LIFETIME_SECONDS } from '../lib/iotcore/limits.js';
import { assertSubfolder } from '../lib/iotcore/topics.js';
import { signGatewayJwt } from '../lib/jwt.js';
import { importSigningKey } from '../lib/keys/signing-key.js';

const HELP = `usage: iotcore-relay send --url <ingest URL> --device <id> <credential> [options]
       iotcore-relay send --print-device-key <id> --master-file <file>

Posts readings to the ingest as device <id> would (POST /devices/<id>/events[/<subfolder>] or /state) and
prints one line per answer: the HTTP status and the body.

credential, one of:
  --key <file> --project <id>  sign a device JWT (RS256 or ES256, chosen by the key) with this private key PEM
  --device-key <key>           send this device key (Authorization: Device-Key <key>)
  --master-file <file>         derive the device key from the master secret in <file>

options:
  --data <text>        the payload (default: a small JSON reading numbered from 1)
  --subfolder <path>   an events subfolder, e.g. alarms/high
  --state              send the payload as the device's state instead of an event
  --count <n>          send <n> readings, one request each (default 1)
  --message-id <id>    X-Message-Id, for deduplication; with --count, suffixed -1, -2, ...
  --jwt-minutes <n>    lifetime of the signed JWT (default 20, at most 1440)
  --ca-file <file>     trust this CA PEM for an https URL (verification stays on)
  --print-device-key <id>  print the device key of <id> (needs --master-file) and exit
  --help               this text

exit status: 0 when every reading was accepted (2xx), 1 otherwise, 2 for a usage error.`;

const OPTIONS = {
  url: { type: 'string' },
  device: { type: 'string' },
  key: { type: 'string' },
  project: { type: 'string' },
  'device-key': { type: 'string' },
  'master-file': { type: 'string' },
  data: { type: 'string' },
  subfolder: { type: 'string' },
  state: { type: 'boolean' },
  count: { type: 'string' },
  'message-id': { type: 'string' },
  'jwt-minutes': { type: 'string' },
  'ca-file': { type: 'string' },
  'print-device-key': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values'];

/** A mistake in the command line: printed with a pointer to --help, exit status 2. */
export class UsageError extends Error {}

export async function sendCommand(argv: string[]): Promise<number> {
  // Uplinks as a LoRaWAN network server posts them: a command of its own, loaded only when asked for.
  if (argv.some((a) => a === '--lorawan' || a.startsWith('--lorawan='))) return (await import('./lorawan-send.js')).lorawanSendCommand(argv);
  let values: Values;
  try {
    values = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (e) {
    return usageError((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${HELP}\n`);
    return 0;
  }
  try {
    if (values['print-device-key'] !== undefined) {
      process.stdout.write(`${await printableDeviceKey(values['print-device-key'], values['master-file'])}\n`);
      return 0;
    }
    return await send(values);
  } catch (e) {
    if (e instanceof UsageError) return usageError(e.message);
    // RelayError messages name files and fields, never key material.
    process.stderr.write(`iotcore-relay send: ${(e as Error).message}\n`);
    return 1;
  }
}

async function send(values: Values): Promise<number> {
  const base = required(values.url, '--url');
  const deviceId = required(values.device, '--device');
  assertDeviceId(deviceId, '--device');
  if (values.subfolder !== undefined) {
    if (values.state) throw new UsageError('--subfolder is for events; state has no subfolders');
    assertSubfolder(values.subfolder, '--subfolder');
  }
  const count = wholeNumber(values.count ?? '1', '--count', 1, 10_000);
  const url = readingUrl(base, deviceId, values.state === true, values.subfolder);
  const authorization = await authorizationFor(deviceId, values);
  const ca = values['ca-file'] === undefined ? undefined : await readFile(values['ca-file'], 'utf8');

  let failures = 0;
  for (let i = 1; i <= count; i++) {
    const body = Buffer.from(values.data ?? JSON.stringify({ reading: i, at: new Date().toISOString() }), 'utf8');
    const headers: Record<string, string> = { authorization, 'content-type': values.data === undefined ? 'application/json' : 'text/plain' };
    const messageId = values['message-id'];
    if (messageId !== undefined) headers['x-message-id'] = count === 1 ? messageId : `${messageId}-${i}`;
    try {
      const answer = await post(url, headers, body, ca);
      if (answer.status < 200 || answer.status > 299) failures++;
      process.stdout.write(`${answer.status} ${answer.body}\n`);
    } catch (e) {
      failures++;
      const unreachable = unreachableReason(url, e);
      if (unreachable !== undefined) {
        // The next readings would meet the same closed door: say why once, and stop.
        process.stderr.write(`iotcore-relay send: ${unreachable}\n`);
        return 1;
      }
      process.stdout.write(`error ${(e as Error).message}\n`);
    }
  }
  return failures === 0 ? 0 : 1;
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNRESET', 'ETIMEDOUT']);
const TLS_CODE = /^(ERR_TLS_|ERR_SSL_|UNABLE_TO_|CERT_|SELF_SIGNED_|DEPTH_ZERO_|HOSTNAME_)/;
const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]']);

/**
 * What to tell the user when the ingest URL cannot be reached at all, naming the URL tried and what to check; undefined
 * for any other failure. A local URL that refuses the connection is, nearly always, a local stack that is not running.
 */
export function unreachableReason(url: URL, error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code;
  if (typeof code !== 'string') return undefined;
  if (TLS_CODE.test(code)) return `TLS with ${url.origin} failed (${code}) for ${url.href}: give the CA that signed its certificate with --ca-file, or check --url`;
  if (!CONNECTION_CODES.has(code)) return undefined;
  if (LOOPBACK.has(url.hostname) && code === 'ECONNREFUSED') {
    return `nothing answers at ${url.href} (${code}): is \`npm start\` running? It serves the ingest on http://127.0.0.1:3000 unless told otherwise; --url names another`;
  }
  return `cannot reach ${url.href} (${code}): check --url`;
}

async function authorizationFor(deviceId: string, values: Values): Promise<string> {
  const given = [values.key !== undefined, values['device-key'] !== undefined, values['master-file'] !== undefined].filter(Boolean).length;
  if (given !== 1) throw new UsageError('give exactly one credential: --key (with --project), --device-key or --master-file');
  if (values.key !== undefined) {
    const project = required(values.project, '--project');
    const minutes = wholeNumber(values['jwt-minutes'] ?? '20', '--jwt-minutes', 1, MAX_JWT_LIFETIME_SECONDS / 60);
    const { key, alg } = await importSigningKey(await readFile(values.key, 'utf8'), { origin: `--key ${values.key}` });
    // A device token has the gateway token's exact shape (docs/protocol.md §1.3): {alg, typ}, iat, exp, aud.
    return `Bearer ${await signGatewayJwt({ key, alg, project, lifetimeSeconds: minutes * 60 })}`;
  }
  if (values['device-key'] !== undefined) return `Device-Key ${values['device-key']}`;
  return `Device-Key ${await printableDeviceKey(deviceId, values['master-file'])}`;
}

async function printableDeviceKey(deviceId: string, masterFile: string | undefined): Promise<string> {
  assertDeviceId(deviceId, '--print-device-key');
  const file = required(masterFile, '--master-file');
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new RelayError('ERR_CONFIG', `--master-file ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  return deriveDeviceKey(masterKeyFromText(text, `--master-file ${file}`), deviceId);
}

/** The simple-form route of the reading, under whatever path prefix the ingest URL has (a stage, say). */
function readingUrl(base: string, deviceId: string, state: boolean, subfolder: string | undefined): URL {
  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new UsageError(`--url ${base} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('--url must be http:// or https://');
  // Each segment is encoded: a device ID may hold % and +, which API Gateway decodes back.
  const tail = state ? 'state' : ['events', ...(subfolder?.split('/') ?? [])].map(encodeURIComponent).join('/');
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/devices/${encodeURIComponent(deviceId)}/${tail}`;
  return url;
}

export function post(url: URL, headers: Record<string, string>, body: Buffer, ca: string | undefined): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const options = { method: 'POST', headers: { ...headers, 'content-length': String(body.byteLength) }, timeout: 30_000 };
    const onResponse = (res: IncomingMessage): void => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    };
    // Certificate verification is never turned off; a private CA is trusted by naming it.
    const req =
      url.protocol === 'https:' ? httpsRequest(url, { ...options, ...(ca ? { ca } : {}) }, onResponse) : httpRequest(url, options, onResponse);
    req.on('timeout', () => req.destroy(new Error('no answer within 30 s')));
    req.on('error', reject);
    req.end(body);
  });
}

function required(value: string | undefined, flag: string): string {
  if (value === undefined || value.trim() === '') throw new UsageError(`${flag} is required`);
  return value;
}

export function wholeNumber(text: string, flag: string, min: number, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`${flag} must be a whole number from ${min} to ${max}`);
  return n;
}

function usageError(message: string): number {
  process.stderr.write(`iotcore-relay send: ${message}\nRun 'iotcore-relay send --help' for the options.\n`);
  return 2;
}
