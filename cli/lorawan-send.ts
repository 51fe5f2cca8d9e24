/**
 * `iotcore-relay send --lorawan ttn|chirpstack`: posts realistic uplinks to the LoRaWAN webhook route the way The
 * Things Stack or ChirpStack would (cli/lorawan-uplinks.ts), with the integration's webhook secret, and prints each
 * answer. `--retries` posts the same body again, as a network server retrying a webhook does, to see it queued once.
 *
 * @example
 * iotcore-relay send --lorawan ttn --url http://127.0.0.1:3000 --secrets-file .local/lorawan-secrets.json
 * iotcore-relay send --lorawan chirpstack --url https://api.example.com --integration plant-cs --secret "$SECRET" --data-hex 0102
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { RelayError } from '../lib/errors.js';
import { chirpstackUplink, DEMO_LORAWAN, ttsUplink, type UplinkOptions } from './lorawan-uplinks.js';
import { post, UsageError, wholeNumber as whole } from './send-command.js';

export const LORAWAN_HELP = `usage: iotcore-relay send --lorawan ttn|chirpstack --url <HTTP API URL> (--secret <s> | --secrets-file <f>) [options]

Posts uplinks to <url>/lorawan/<integration> as The Things Stack's webhook (ttn) or ChirpStack's HTTP
integration (chirpstack, ?event=up) sends them, and prints one line per answer: the HTTP status and the body.

  --integration <id>     the integration (default: ttn-demo or chirpstack-demo, the local stack's)
  --secret <s>           the webhook secret
  --secrets-file <f>     read it from a secret document ({"<integration>": {"webhookSecret": ...}})
  --secret-header <h>    the header it goes in (default x-webhook-secret)
  --device-id <id>       TTS device ID / ChirpStack device name (default: the local stack's demo device)
  --dev-eui <hex>        the DevEUI, 16 hexadecimal digits (default: the demo device's)
  --application-id <id>  TTS application ID / ChirpStack application UUID
  --f-port <n>           frame port, 1 to 223 (default 2)
  --f-cnt <n>            frame counter of the first uplink (default: from the clock, so each run is a new frame)
  --data-hex <hex>       the frame payload (default: a soil probe reading, with its decoded form)
  --count <n>            uplinks to send, counters increasing (default 1)
  --retries <n>          post each uplink n more times, unchanged, as a retrying network server (default 0)
  --ca-file <file>       trust this CA PEM for an https URL (verification stays on)

exit status: 0 when every post was answered 2xx, 1 otherwise, 2 for a usage error.`;

const OPTIONS = {
  lorawan: { type: 'string' },
  url: { type: 'string' },
  integration: { type: 'string' },
  secret: { type: 'string' },
  'secrets-file': { type: 'string' },
  'secret-header': { type: 'string' },
  'device-id': { type: 'string' },
  'dev-eui': { type: 'string' },
  'application-id': { type: 'string' },
  'f-port': { type: 'string' },
  'f-cnt': { type: 'string' },
  'data-hex': { type: 'string' },
  count: { type: 'string' },
  retries: { type: 'string' },
  'ca-file': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values'];

export async function lorawanSendCommand(argv: string[]): Promise<number> {
  let values: Values;
  try {
    values = parseArgs({ args: argv, options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (e) {
    return usageError((e as Error).message);
  }
  if (values.help) {
    process.stdout.write(`${LORAWAN_HELP}\n`);
    return 0;
  }
  try {
    return await send(values);
  } catch (e) {
    if (e instanceof UsageError) return usageError(e.message);
    // Messages name files and fields, never the secret.
    process.stderr.write(`iotcore-relay send: ${(e as Error).message}\n`);
    return 1;
  }
}

async function send(values: Values): Promise<number> {
  const stack = values.lorawan;
  if (stack !== 'ttn' && stack !== 'chirpstack') throw new UsageError('--lorawan must be ttn or chirpstack');
  const base = values.url;
  if (base === undefined || base.trim() === '') throw new UsageError('--url is required');
  const integration = values.integration ?? (stack === 'ttn' ? DEMO_LORAWAN.tts.integration : DEMO_LORAWAN.chirpstack.integration);
  if (!/^[a-z0-9-]{1,63}$/.test(integration)) throw new UsageError('--integration must be 1 to 63 of [a-z0-9-]');
  const secret = await secretOf(values, integration);
  const header = (values['secret-header'] ?? 'x-webhook-secret').toLowerCase();

  const count = whole(values.count ?? '1', '--count', 1, 10_000);
  const retries = whole(values.retries ?? '0', '--retries', 0, 10);
  const firstCnt = values['f-cnt'] === undefined ? Math.floor(Date.now() / 1000) % 0x1_0000 : whole(values['f-cnt'], '--f-cnt', 0, 0xffff_ffff - count);
  const options: UplinkOptions = {};
  if (values['device-id'] !== undefined) options.deviceId = values['device-id'];
  if (values['dev-eui'] !== undefined) {
    if (!/^[0-9A-Fa-f]{16}$/.test(values['dev-eui'])) throw new UsageError('--dev-eui must be 16 hexadecimal digits');
    options.devEui = values['dev-eui'];
  }
  if (values['application-id'] !== undefined) options.applicationId = values['application-id'];
  if (values['f-port'] !== undefined) options.fPort = whole(values['f-port'], '--f-port', 1, 223);
  if (values['data-hex'] !== undefined) {
    if (!/^(?:[0-9A-Fa-f]{2})*$/.test(values['data-hex'])) throw new UsageError('--data-hex must be an even number of hexadecimal digits');
    options.payload = Buffer.from(values['data-hex'], 'hex');
  }

  let url: URL;
  try {
    url = new URL(base);
  } catch {
    throw new UsageError(`--url ${base} is not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError('--url must be http:// or https://');
  url.pathname = `${url.pathname.replace(/\/+$/, '')}/lorawan/${integration}`;
  if (stack === 'chirpstack') url.searchParams.set('event', 'up');
  const ca = values['ca-file'] === undefined ? undefined : await readFile(values['ca-file'], 'utf8');

  let failures = 0;
  for (let i = 0; i < count; i++) {
    const fields = { ...options, fCnt: firstCnt + i };
    const body = Buffer.from(JSON.stringify(stack === 'ttn' ? ttsUplink(fields) : chirpstackUplink(fields)), 'utf8');
    for (let attempt = 0; attempt <= retries; attempt++) {
      try {
        const answer = await post(url, { 'content-type': 'application/json', [header]: secret, 'user-agent': 'iotcore-relay-send' }, body, ca);
        if (answer.status < 200 || answer.status > 299) failures++;
        process.stdout.write(`${answer.status} ${answer.body}\n`);
      } catch (e) {
        failures++;
        process.stdout.write(`error ${(e as Error).message}\n`);
      }
    }
  }
  return failures === 0 ? 0 : 1;
}

async function secretOf(values: Values, integration: string): Promise<string> {
  if ((values.secret === undefined) === (values['secrets-file'] === undefined)) throw new UsageError('give exactly one of --secret and --secrets-file');
  if (values.secret !== undefined) return values.secret;
  const file = values['secrets-file']!;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (e) {
    throw new RelayError('ERR_CONFIG', `--secrets-file ${file} cannot be read (${(e as NodeJS.ErrnoException).code ?? 'unreadable'})`);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    throw new RelayError('ERR_CONFIG', `--secrets-file ${file} is not a JSON document`);
  }
  const secret = (doc as Record<string, { webhookSecret?: unknown } | undefined> | null)?.[integration]?.webhookSecret;
  if (typeof secret !== 'string') throw new RelayError('ERR_CONFIG', `--secrets-file ${file} has no webhookSecret for integration ${integration}`);
  return secret;
}

function usageError(message: string): number {
  process.stderr.write(`iotcore-relay send: ${message}\nRun 'iotcore-relay send --lorawan ttn --help' for the options.\n`);
  return 2;
}
