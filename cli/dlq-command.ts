/**
 * `iotcore-relay dlq list|replay`: the dead-letter queue for an operator. `list` shows each dead letter's device,
 * reason code, reason and age; `replay` sends dead letters back to the relay queue once their cause is fixed (a
 * device bound, a token renewed), skipping those that would only fail again unless `--force` says otherwise. Both
 * filter by code, device, type and age. The work is lib/dead-letters/; this module finds the queues and prints.
 *
 * The queues, by default, are the local stack's (`npm start`: SQS at http://127.0.0.1:9324, stage `local`);
 * `--stage` names a deployed stage, whose queue names serverless.yml fixes, found in the account and region of the
 * AWS credentials at hand; `--dlq-url` and `--queue-url` name queues outright.
 *
 * @example
 * iotcore-relay dlq list --code ERR_ATTACH_REJECTED
 * iotcore-relay dlq replay --device ghost-0001 --dry-run
 * iotcore-relay dlq replay --stage prod --region eu-west-1 --gateways gw-1,gw-2 --older-than 10m
 */
import { parseArgs } from 'node:util';
import { GetQueueUrlCommand, ListDeadLetterSourceQueuesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { describeAge, devicesOf, type DeadLetter } from '../lib/dead-letters/dead-letter.js';
import { listDeadLetters, replayDeadLetters, type DeadLetterQueueTarget, type ReplayReport } from '../lib/dead-letters/dead-letter-queue.js';
import { summarizeReplay } from '../lib/dead-letters/replay-summary.js';
import { parseCodes, parseDevices, parseDuration, parseTypes, permanentFailure, type DeadLetterFilter } from '../lib/dead-letters/selection.js';
import { isRelayError, RelayError } from '../lib/errors.js';
import { parseGatewayIds } from '../lib/gateway-pool.js';
import { progressReporter } from './dlq-progress.js';

const HELP = `usage: iotcore-relay dlq list   [queues] [filters] [--json] [--limit <n>]
       iotcore-relay dlq replay [queues] [filters] [--dry-run] [--force] [--gateways <ids>]

list    prints the dead letters: age in the dead-letter queue, device, reason code, type and reason.
replay  sends them back to the relay queue, each in its gateway's message group with a fresh deduplication ID,
        and deletes each from the dead-letter queue only once its copy is on the relay queue. Records that would
        fail again (refused for their content: ERR_INVALID_*, ERR_PAYLOAD_TOO_LARGE, ERR_UNSUPPORTED_VERSION,
        ERR_UNKNOWN_TYPE, ERR_INVALID_TOPIC, or a body the queue contract refuses) are skipped unless --force.
        Fix the cause first: a record whose cause remains comes straight back.

queues (default: the local stack of 'npm start', SQS at http://127.0.0.1:9324, stage local):
  --endpoint <url>     the local stack's SQS endpoint, if not the default (npm start -- --free-ports)
  --stage <stage>      a deployed stage: the queues serverless.yml names for it, in the AWS account and region of
                       your credentials (AWS_PROFILE, AWS_REGION, or --region)
  --region <region>    the AWS region of the queues
  --dlq-url <url>      the dead-letter queue's URL (the stack output RelayDeadLetterQueueUrl)
  --queue-url <url>    the relay queue's URL (RelayQueueUrl), for replay; default: the queue whose dead-letter
                       queue this is

filters (comma-separated lists; a record must match each filter given):
  --code <codes>       reason codes (ERR_ATTACH_REJECTED), prefixes (ERR_INVALID_*), or 'redrive' for records
                       SQS moved after maxReceiveCount receives, which carry no code
  --device <ids>       device IDs or prefixes (pump-*)
  --type <types>       event, state, config-poll, unknown
  --older-than <age>   in the dead-letter queue for at least this long: 90s, 15m, 2h, 3d
  --newer-than <age>   in the dead-letter queue for less than this long

options:
  --dry-run            replay: change nothing; print what would be replayed and skipped
  --force              replay: also records that would fail again
  --gateways <ids>     replay: the configured gateway IDs (the stage's gatewayIds parameter, or
                       IOTCORE_GATEWAY_IDS); each record goes to its device's gateway as the ingest picks it.
                       Without them, each goes back to the message group it came from
  --json               list: one JSON object per dead letter
  --limit <n>          examine at most n messages (list: default 1000)
  --visibility-timeout <s>  how long a message read stays hidden from other readers unless released
                       sooner (default 30)
  --help               this text

Reading a queue means receiving from it: while a command runs, the messages it has read are invisible to other
readers (the local dashboard, a second command), and they are made visible again when it ends; if it is killed,
they reappear after the visibility timeout. On a FIFO queue SQS hands out no more messages of a message group
while some of it are in flight, so a list shows the first messages of each gateway's group (up to 10) and says
how many it did not reach; a replay deletes what it sends and so goes on through the group.

A replay can be stopped (Ctrl-C) and run again: what was replayed has left the dead-letter queue. A crash between
a copy's send and the original's delete leaves a duplicate, never a loss.

exit status: 0 when all went well, 1 when a record failed to replay or a queue could not be read, 2 for a usage
error.`;

const OPTIONS = {
  endpoint: { type: 'string' },
  stage: { type: 'string' },
  region: { type: 'string' },
  'dlq-url': { type: 'string' },
  'queue-url': { type: 'string' },
  code: { type: 'string' },
  device: { type: 'string' },
  type: { type: 'string' },
  'older-than': { type: 'string' },
  'newer-than': { type: 'string' },
  'dry-run': { type: 'boolean' },
  force: { type: 'boolean' },
  gateways: { type: 'string' },
  json: { type: 'boolean' },
  limit: { type: 'string' },
  'visibility-timeout': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

type Values = ReturnType<typeof parseArgs<{ options: typeof OPTIONS }>>['values'];

/** `npm start`'s SQS endpoint and stage (local/stack.ts DEFAULT_PORTS, scripts/start.ts). */
export const LOCAL_SQS_ENDPOINT = 'http://127.0.0.1:9324';
export const LOCAL_STAGE = 'local';
/** The local SQS server takes any credentials; these keep a user's AWS credentials away from it. */
const LOCAL_CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };
const LOCAL_REGION = 'us-east-1';

/** The queue names serverless.yml gives a stage (`${self:service}-${sls:stage}-relay.fifo` and `-relay-dlq.fifo`). */
export function relayQueueNames(stage: string): { relay: string; deadLetter: string } {
  return { relay: `iotcore-relay-${stage}-relay.fifo`, deadLetter: `iotcore-relay-${stage}-relay-dlq.fifo` };
}

/** A mistake in the command line: printed with a pointer to --help, exit status 2. */
class UsageError extends Error {}

/** Where the command writes: results to `out`, progress and messages to `err`. */
export interface DlqIo {
  out: (text: string) => void;
  err: { write(text: string): unknown; isTTY?: boolean };
}
type Io = DlqIo;

export async function dlqCommand(argv: string[], io: DlqIo = { out: (text) => void process.stdout.write(text), err: process.stderr }): Promise<number> {
  const [action, ...rest] = argv;
  if (action === undefined || action === '--help' || action === '-h' || action === 'help') {
    io.out(`${HELP}\n`);
    return action === undefined ? 2 : 0;
  }
  if (action !== 'list' && action !== 'replay') return usageError(io, `unknown action '${action}': list or replay`);
  let values: Values;
  try {
    values = parseArgs({ args: rest, options: OPTIONS, strict: true, allowPositionals: false }).values;
  } catch (e) {
    return usageError(io, (e as Error).message);
  }
  if (values.help) {
    io.out(`${HELP}\n`);
    return 0;
  }
  let client: SQSClient | undefined;
  const abort = new AbortController();
  // The first Ctrl-C ends the pass between two pages and releases what it holds; a second one is Node's default.
  const onSigint = (): void => {
    io.err.write('\nstopping after this page; run the command again to go on\n');
    abort.abort();
    process.removeListener('SIGINT', onSigint);
  };
  try {
    const filter = filterOf(values);
    const options = passOptions(values, action, abort.signal);
    const gatewayIds = action === 'replay' ? gatewayIdsOf(values) : undefined;
    const queues = await resolveQueues(values, action === 'replay');
    client = queues.client;
    process.on('SIGINT', onSigint);
    if (action === 'list') return await list(queues.target, filter, options, values.json === true, queues.local, io);
    return await replay(queues.target, filter, options, values, gatewayIds, queues.local, io);
  } catch (e) {
    if (e instanceof UsageError || (isRelayError(e) && e.code === 'ERR_INVALID_FIELD')) return usageError(io, (e as Error).message);
    io.err.write(`iotcore-relay dlq ${action}: ${(e as Error).message}\n`);
    return 1;
  } finally {
    process.removeListener('SIGINT', onSigint);
    client?.destroy();
  }
}

interface PassSettings {
  limit?: number;
  visibilityTimeoutSeconds?: number;
  signal: AbortSignal;
}

function filterOf(values: Values): DeadLetterFilter {
  const filter: DeadLetterFilter = {};
  if (values.code !== undefined) filter.codes = parseCodes(values.code);
  if (values.device !== undefined) filter.devices = parseDevices(values.device);
  if (values.type !== undefined) filter.types = parseTypes(values.type);
  if (values['older-than'] !== undefined) filter.olderThanSeconds = parseDuration(values['older-than'], '--older-than');
  if (values['newer-than'] !== undefined) filter.newerThanSeconds = parseDuration(values['newer-than'], '--newer-than');
  return filter;
}

function passOptions(values: Values, action: 'list' | 'replay', signal: AbortSignal): PassSettings {
  if (action === 'list') {
    for (const flag of ['dry-run', 'force', 'gateways'] as const) if (values[flag] !== undefined) throw new UsageError(`--${flag} is for replay`);
  } else if (values.json !== undefined) {
    throw new UsageError('--json is for list');
  }
  const settings: PassSettings = { signal };
  const limit = values.limit ?? (action === 'list' ? '1000' : undefined);
  if (limit !== undefined) settings.limit = wholeNumber(limit, '--limit', 1, 1_000_000);
  if (values['visibility-timeout'] !== undefined) settings.visibilityTimeoutSeconds = wholeNumber(values['visibility-timeout'], '--visibility-timeout', 1, 43_200);
  return settings;
}

interface Queues {
  client: SQSClient;
  target: DeadLetterQueueTarget;
  /** The local stack: no long poll is needed to be sure the queue is empty. */
  local: boolean;
}

async function resolveQueues(values: Values, forReplay: boolean): Promise<Queues> {
  const dlqUrl = values['dlq-url'];
  const stage = values.stage;
  if (stage !== undefined && dlqUrl !== undefined) throw new UsageError('give --stage or --dlq-url, not both');
  if (stage !== undefined && !/^[a-zA-Z0-9-]{1,64}$/.test(stage)) throw new UsageError('--stage must be letters, digits and dashes');
  const local = values.endpoint !== undefined || (stage === undefined && dlqUrl === undefined);
  const endpoint = values.endpoint ?? LOCAL_SQS_ENDPOINT;
  if (local) {
    try {
      const url = new URL(endpoint);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
    } catch {
      throw new UsageError(`--endpoint ${endpoint} is not an http:// or https:// URL`);
    }
  }
  const client = local
    ? new SQSClient({ endpoint, region: values.region ?? LOCAL_REGION, credentials: LOCAL_CREDENTIALS })
    : new SQSClient(values.region === undefined ? {} : { region: values.region });
  const where = local ? `at ${endpoint}` : `in ${values.region ?? 'the region of your AWS configuration'}`;
  try {
    const names = relayQueueNames(stage ?? LOCAL_STAGE);
    const deadLetterQueueUrl = dlqUrl ?? (await queueUrl(client, names.deadLetter, where, local));
    const target: DeadLetterQueueTarget = { client, deadLetterQueueUrl };
    if (forReplay) {
      target.relayQueueUrl =
        values['queue-url'] ?? (dlqUrl === undefined ? await queueUrl(client, names.relay, where, local) : await sourceQueueOf(client, deadLetterQueueUrl));
    }
    return { client, target, local };
  } catch (e) {
    client.destroy();
    throw e;
  }
}

async function queueUrl(client: SQSClient, name: string, where: string, local: boolean): Promise<string> {
  try {
    const { QueueUrl } = await client.send(new GetQueueUrlCommand({ QueueName: name }));
    if (QueueUrl === undefined) throw new Error('no URL in the answer');
    return QueueUrl;
  } catch (e) {
    throw queueLookupFailure(e, `queue ${name} ${where}`, local);
  }
}

/** The relay queue: the one queue whose redrive policy names this dead-letter queue. */
async function sourceQueueOf(client: SQSClient, deadLetterQueueUrl: string): Promise<string> {
  let urls: string[];
  try {
    urls = (await client.send(new ListDeadLetterSourceQueuesCommand({ QueueUrl: deadLetterQueueUrl }))).queueUrls ?? [];
  } catch (e) {
    throw queueLookupFailure(e, `the queues that use ${deadLetterQueueUrl} as their dead-letter queue`, false);
  }
  if (urls.length !== 1) {
    throw new UsageError(`${urls.length === 0 ? 'no queue uses' : `${urls.length} queues use`} ${deadLetterQueueUrl} as their dead-letter queue: give --queue-url`);
  }
  return urls[0]!;
}

function queueLookupFailure(e: unknown, what: string, local: boolean): RelayError {
  const err = (e ?? {}) as { name?: string; code?: string; message?: string };
  if (err.name === 'QueueDoesNotExist' || err.name === 'AWS.SimpleQueueService.NonExistentQueue') {
    return new RelayError('ERR_CONFIG', `no ${what}${local ? '' : ': is the stage deployed in that account and region (--region)?'}`);
  }
  const cause = [err.code, err.name, err.message].find((x) => typeof x === 'string' && x !== '') ?? 'error';
  const hint = local ? '. Is the local stack running (npm start)? Deployed queues are named with --stage or --dlq-url' : '';
  return new RelayError('ERR_QUEUE_UNAVAILABLE', `cannot find the ${what}: ${cause}${hint}`, { cause: e });
}

async function list(target: DeadLetterQueueTarget, filter: DeadLetterFilter, settings: PassSettings, json: boolean, local: boolean, io: Io): Promise<number> {
  const progress = progressReporter(io.err, 'dlq list');
  const now = Date.now();
  const result = await listDeadLetters(target, { ...settings, filter, onProgress: progress.update, ...(local ? { confirmWaitSeconds: 0 } : {}) }).finally(() => progress.done());
  if (json) {
    for (const dl of result.deadLetters) io.out(`${JSON.stringify(jsonOf(dl, now))}\n`);
  } else if (result.deadLetters.length > 0) {
    io.out(table(['AGE', 'DEVICE', 'CODE', 'TYPE', 'REASON'], result.deadLetters.map((dl) => [describeAge(now - dl.deadLetteredAt), devicesText(dl), codeText(dl), dl.type, dl.reason])));
  }
  const matched = `${result.deadLetters.length} dead letter${result.deadLetters.length === 1 ? '' : 's'}`;
  const filtered = Object.keys(filter).length > 0 ? ` matching, of ${result.examined} examined` : '';
  const unreached = result.unreached > 0 ? `; about ${result.unreached} more not reached (in flight elsewhere, behind others of their FIFO group, or over --limit)` : '';
  io.err.write(`${matched}${filtered}${unreached}\n`);
  return 0;
}

async function replay(
  target: DeadLetterQueueTarget,
  filter: DeadLetterFilter,
  settings: PassSettings,
  values: Values,
  gatewayIds: string[] | undefined,
  local: boolean,
  io: Io,
): Promise<number> {
  const progress = progressReporter(io.err, values['dry-run'] ? 'dlq replay (dry run)' : 'dlq replay', { counts: true });
  const report = await replayDeadLetters(target, {
    ...settings,
    filter,
    force: values.force === true,
    dryRun: values['dry-run'] === true,
    ...(gatewayIds === undefined ? {} : { gatewayIds }),
    onProgress: progress.update,
    ...(local ? { confirmWaitSeconds: 0 } : {}),
  }).finally(() => progress.done());
  io.out(describeReport(report));
  io.out(`${summarizeReplay(report, '--force replays them')}\n`);
  const states = report.replayed.filter((r) => r.deadLetter.type === 'state').length;
  if (states > 0 && !report.dryRun) {
    io.out(`note: ${states} state record${states === 1 ? '' : 's'} replayed; each sets its device's state back if a newer one was relayed since (--type event leaves them)\n`);
  }
  return report.failed.length > 0 || report.notDeleted.length > 0 ? 1 : 0;
}

/** `--gateways`, else IOTCORE_GATEWAY_IDS from the environment (events/local.env sets it), else none. */
function gatewayIdsOf(values: Values): string[] | undefined {
  const text = values.gateways ?? process.env.IOTCORE_GATEWAY_IDS;
  if (text === undefined || text.trim() === '') return undefined;
  try {
    return parseGatewayIds(text);
  } catch (e) {
    throw new UsageError(`${values.gateways === undefined ? 'IOTCORE_GATEWAY_IDS' : '--gateways'}: ${(e as Error).message}`);
  }
}

function describeReport(report: ReplayReport): string {
  const rows: string[][] = [];
  for (const r of report.replayed) rows.push([report.dryRun ? 'would replay' : 'replayed', devicesText(r.deadLetter), codeText(r.deadLetter), r.groupId === undefined ? '' : `to group ${r.groupId}`]);
  for (const s of report.skipped) rows.push(['skipped', devicesText(s.deadLetter), codeText(s.deadLetter), `would fail again: ${s.why.code}: ${s.why.reason}`]);
  for (const f of report.failed) rows.push(['failed', devicesText(f.deadLetter), codeText(f.deadLetter), f.reason]);
  for (const n of report.notDeleted) rows.push(['not deleted', devicesText(n.deadLetter), codeText(n.deadLetter), `its copy was sent; ${n.reason}`]);
  return rows.length === 0 ? '' : table(['', 'DEVICE', 'CODE', ''], rows);
}

function jsonOf(dl: DeadLetter, now: number): Record<string, unknown> {
  const permanent = permanentFailure(dl);
  return {
    messageId: dl.messageId,
    deviceId: dl.deviceId,
    deviceIds: dl.deviceIds,
    code: dl.code,
    reason: dl.reason,
    field: dl.field,
    type: dl.type,
    via: dl.via,
    gatewayId: dl.gatewayId,
    groupId: dl.groupId,
    sourceMessageId: dl.sourceMessageId,
    deadLetteredAt: new Date(dl.deadLetteredAt).toISOString(),
    ageSeconds: Math.max(0, Math.round((now - dl.deadLetteredAt) / 1000)),
    ...(permanent === undefined ? {} : { wouldFailAgain: permanent.code }),
  };
}

function devicesText(dl: DeadLetter): string {
  const devices = devicesOf(dl);
  if (devices.length === 0) return '-';
  return devices.length <= 3 ? devices.join(',') : `${devices.slice(0, 2).join(',')},+${devices.length - 2}`;
}

function codeText(dl: DeadLetter): string {
  return dl.code ?? 'redrive';
}

/** Columns padded to their widest cell; the last column is not padded. */
function table(header: string[], rows: string[][]): string {
  const all = [header, ...rows];
  const widths = header.map((_, i) => Math.max(...all.map((r) => (r[i] ?? '').length)));
  return `${all.map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  ').trimEnd()).join('\n')}\n`;
}

function wholeNumber(text: string, flag: string, min: number, max: number): number {
  const n = /^\d+$/.test(text) ? Number(text) : Number.NaN;
  if (!(n >= min && n <= max)) throw new UsageError(`${flag} must be a whole number from ${min} to ${max}`);
  return n;
}

function usageError(io: Io, message: string): number {
  io.err.write(`iotcore-relay dlq: ${message}\nRun 'iotcore-relay dlq --help' for the options.\n`);
  return 2;
}
