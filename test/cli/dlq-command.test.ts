/**
 * `iotcore-relay dlq` against the local SQS server with serverless.yml's queues: what it prints, how it finds the
 * queues, its exit statuses, and its progress on a terminal and off one. The whole path (relay, stack, bridge) is
 * test/e2e/dead-letters.test.ts.
 */
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { dlqCommand, LOCAL_SQS_ENDPOINT, LOCAL_STAGE, relayQueueNames, type DlqIo } from '../../cli/dlq-command.js';
import { progressReporter } from '../../cli/dlq-progress.js';
import { loadServerlessTemplate } from '../../local/serverless-template.js';
import { DEFAULT_PORTS, projectRoot } from '../../local/stack.js';
import { queueSpec } from '../../local/template-resources.js';
import { park, redriven } from '../helpers/dead-letters.js';
import { closedPort, startLocalSqs, type LocalSqs } from '../helpers/local-sqs.js';
import { eventBody, stateBody } from '../helpers/relay-fixtures.js';

let sqs: LocalSqs;

beforeAll(async () => {
  sqs = await startLocalSqs();
});
afterEach(async () => {
  await sqs.purge();
});
afterAll(async () => {
  await sqs.stop();
});

interface Run {
  code: number;
  out: string;
  err: string;
}

async function run(argv: string[], tty = false): Promise<Run> {
  let out = '';
  let err = '';
  const io: DlqIo = { out: (t) => void (out += t), err: { write: (t: string) => (err += t), isTTY: tty } };
  const code = await dlqCommand(argv, io);
  return { code, out, err };
}

/** The test server's queues have short names, so they are named by URL; the relay queue is found from the DLQ. */
const here = (): string[] => ['--endpoint', sqs.endpoint, '--dlq-url', sqs.deadLetterQueueUrl];

async function parkSome(): Promise<void> {
  await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody('ghost-0001'), code: 'ERR_ATTACH_REJECTED', reason: 'the bridge refused to attach the device', deviceId: 'ghost-0001' });
  await park(sqs.client, sqs.deadLetterQueueUrl, { body: '{"v":1,"deviceId":"pump-0001","encoding":"base64","payload":"%%"}', code: 'ERR_INVALID_BASE64', reason: 'payload is not valid base64', deviceId: 'pump-0001' });
  await redriven(sqs.client, sqs.deadLetterQueueUrl, stateBody('pump-0002'));
}

describe('iotcore-relay dlq list', () => {
  it('prints a table of age, device, code, type and reason, and the count on stderr', async () => {
    await parkSome();

    const { code, out, err } = await run(['list', ...here()]);

    expect(code).toBe(0);
    const lines = out.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^AGE +DEVICE +CODE +TYPE +REASON$/);
    expect(lines.slice(1).map((l) => l.split(/ {2,}/).slice(1))).toEqual([
      ['ghost-0001', 'ERR_ATTACH_REJECTED', 'event', 'the bridge refused to attach the device'],
      ['pump-0001', 'ERR_INVALID_BASE64', 'event', 'payload is not valid base64'],
      ['pump-0002', 'redrive', 'state', expect.stringContaining('redrive policy')],
    ]);
    expect(lines[1]).toMatch(/^\d+ s /);
    // A quick pass off a terminal prints no progress, only the count.
    expect(err).toBe('3 dead letters\n');
  });

  it('prints JSON lines and applies the filters', async () => {
    await parkSome();

    const json = await run(['list', ...here(), '--json']);
    const filtered = await run(['list', ...here(), '--json', '--code', 'ERR_*', '--device', 'pump-*']);
    const moved = await run(['list', ...here(), '--code', 'redrive', '--type', 'state']);
    const none = await run(['list', ...here(), '--older-than', '1h']);

    const all = json.out.trim().split('\n').map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(all).toHaveLength(3);
    expect(all[1]).toMatchObject({ deviceId: 'pump-0001', code: 'ERR_INVALID_BASE64', reason: 'payload is not valid base64', type: 'event', via: 'relay', wouldFailAgain: 'ERR_INVALID_BASE64', groupId: 'gw-1' });
    expect(all[0]!.wouldFailAgain).toBeUndefined();
    expect(typeof all[0]!.ageSeconds).toBe('number');
    expect(Object.keys(all[0]!)).not.toContain('body');
    expect(filtered.out.trim().split('\n').map((l) => (JSON.parse(l) as { deviceId: string }).deviceId)).toEqual(['pump-0001']);
    expect(filtered.err).toBe('1 dead letter matching, of 3 examined\n');
    expect(moved.out).toMatch(/pump-0002 +redrive +state/);
    expect(none).toMatchObject({ code: 0, out: '', err: '0 dead letters matching, of 3 examined\n' });
  });

  it('draws a progress bar on a terminal, and clears it', async () => {
    await parkSome();
    const { code, err } = await run(['list', ...here()], true);
    expect(code).toBe(0);
    expect(err).toMatch(/\r\x1b\[Kdlq list \[#+-*\] 3 of about 3 examined/);
    expect(err).toContain('\r\x1b[K3 dead letters\n');
  });
});

describe('iotcore-relay dlq replay', () => {
  it('dry-runs, then replays into the relay queue found from the dead-letter queue, skipping what would fail again', async () => {
    await parkSome();

    const dry = await run(['replay', ...here(), '--dry-run', '--gateways', 'gw-1,gw-2']);
    const real = await run(['replay', ...here(), '--gateways', 'gw-1,gw-2']);
    const relayed = await sqs.receiveAll(sqs.queueUrl);
    const left = await run(['list', ...here(), '--json']);

    expect(dry.code).toBe(0);
    expect(dry.out).toMatch(/^would replay +ghost-0001 +ERR_ATTACH_REJECTED +to group gw-2$/m);
    expect(dry.out).toMatch(/^would replay +pump-0002 +redrive +to group gw-2$/m);
    expect(dry.out).toMatch(/^skipped +pump-0001 +ERR_INVALID_BASE64 +would fail again: ERR_INVALID_BASE64: payload is not valid base64$/m);
    expect(dry.out).toContain('would replay 2; skipped 1 that would fail again (ERR_INVALID_BASE64; --force replays them)');
    expect(real.code).toBe(0);
    expect(real.out).toContain('replayed 2; skipped 1');
    // A replayed state record is worth a word: it may set the device's state back.
    expect(real.out).toContain('note: 1 state record replayed');
    expect(relayed.map((m) => m.groupId)).toEqual(['gw-2', 'gw-2']);
    expect(left.out.trim().split('\n').map((l) => (JSON.parse(l) as { deviceId: string }).deviceId)).toEqual(['pump-0001']);
  });

  it('exits 1 and keeps the dead letters when the relay queue does not take them', async () => {
    await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody('ghost-0001'), code: 'ERR_ATTACH_REJECTED', deviceId: 'ghost-0001' });
    const { code, out } = await run(['replay', ...here(), '--queue-url', `${sqs.endpoint}/123456789012/missing.fifo`]);
    expect(code).toBe(1);
    expect(out).toMatch(/^failed +ghost-0001 +ERR_ATTACH_REJECTED +not sent to the relay queue/m);
    expect((await run(['list', ...here(), '--json'])).out).toContain('ghost-0001');
  });
});

describe('iotcore-relay dlq, finding the queues', () => {
  it('names the queues as serverless.yml does for each stage, and defaults to npm start\'s endpoint', () => {
    for (const stage of [LOCAL_STAGE, 'prod', 'eu-test-2']) {
      const template = loadServerlessTemplate(join(projectRoot(), 'serverless.yml'), { stage, region: 'eu-west-1' });
      expect(relayQueueNames(stage)).toEqual({ relay: queueSpec(template, 'RelayQueue').name, deadLetter: queueSpec(template, 'RelayDeadLetterQueue').name });
    }
    expect(LOCAL_SQS_ENDPOINT).toBe(`http://127.0.0.1:${DEFAULT_PORTS.sqs}`);
  });

  it('says how to start the local stack when nothing answers', async () => {
    const port = await closedPort();
    const { code, err } = await run(['list', '--endpoint', `http://127.0.0.1:${port}`]);
    expect(code).toBe(1);
    expect(err).toContain('iotcore-relay dlq list: cannot find the queue iotcore-relay-local-relay-dlq.fifo');
    expect(err).toContain('Is the local stack running (npm start)?');
  });

  it('says which queue a stage lacks', async () => {
    const { code, err } = await run(['list', '--endpoint', sqs.endpoint, '--stage', 'nosuchstage']);
    expect(code).toBe(1);
    expect(err).toContain('no queue iotcore-relay-nosuchstage-relay-dlq.fifo at');
  });

  it('refuses mistakes in the command line with exit status 2', async () => {
    const cases: [string[], RegExp][] = [
      [['purge'], /unknown action 'purge'/],
      [['list', '--force'], /--force is for replay/],
      [['replay', '--json'], /--json is for list/],
      [['list', '--code', 'attach'], /--code "attach" is not an error code/],
      [['list', '--older-than', '2 weeks'], /--older-than must be a duration/],
      [['list', '--stage', 'prod', '--dlq-url', 'https://sqs.eu-west-1.amazonaws.com/1/x.fifo'], /--stage or --dlq-url, not both/],
      [['list', '--limit', '0'], /--limit must be a whole number/],
      [['replay', '--gateways', 'gw 1'], /--gateways/],
      [['list', '--endpoint', 'ftp://x'], /--endpoint ftp:\/\/x is not an http/],
      [['list', '--colour'], /Unknown option '--colour'/],
    ];
    for (const [argv, message] of cases) {
      const { code, err } = await run(argv);
      expect(code, argv.join(' ')).toBe(2);
      expect(err, argv.join(' ')).toMatch(message);
      expect(err).toContain("Run 'iotcore-relay dlq --help'");
    }
    const help = await run(['--help']);
    expect(help.code).toBe(0);
    expect(help.out).toContain('usage: iotcore-relay dlq list');
  });
});

describe('progress off a terminal', () => {
  it('writes a plain line once a second from the first second on, and a last one when done', () => {
    let t = 0;
    const lines: string[] = [];
    const progress = progressReporter({ write: (s: string) => lines.push(s) }, 'dlq replay', { counts: true, now: () => t });
    const at = (ms: number, examined: number): void => {
      t = ms;
      progress.update({ examined, total: 40, replayed: examined - 1, skipped: 1, failed: 0 });
    };
    at(0, 0);
    at(500, 10);
    at(1000, 20);
    at(1500, 30);
    at(2100, 40);
    progress.done();
    expect(lines).toEqual([
      'dlq replay: 20 of about 40 examined, 19 replayed, 1 skipped, 0 failed\n',
      'dlq replay: 40 of about 40 examined, 39 replayed, 1 skipped, 0 failed\n',
      'dlq replay: 40 of about 40 examined, 39 replayed, 1 skipped, 0 failed, done\n',
    ]);
  });
});
