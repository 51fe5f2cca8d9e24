/**
 * The dashboard's dead-letter panel and its replay route, against the local SQS server with serverless.yml's queues
 * and over a real HTTP socket.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { DeadLetterWatch, handleReplayRequest, type DeadLetterPanel } from '../../local/dead-letter-watch.js';
import { closeHttpServer, listen } from '../../local/listen.js';
import { park } from '../helpers/dead-letters.js';
import { startLocalSqs, type LocalSqs } from '../helpers/local-sqs.js';
import { eventBody } from '../helpers/relay-fixtures.js';

let sqs: LocalSqs;
let watch: DeadLetterWatch;
let server: Server;
let url: string;

beforeAll(async () => {
  sqs = await startLocalSqs();
  server = createServer((req, res) => void handleReplayRequest(req, res, watch));
  await listen(server, 0, '127.0.0.1');
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/dead-letters/replay`;
});
beforeEach(() => {
  watch = new DeadLetterWatch({ client: sqs.client, deadLetterQueueUrl: sqs.deadLetterQueueUrl, relayQueueUrl: sqs.queueUrl, gatewayIds: ['gw-1'], everyMs: 100 });
  watch.start();
});
afterEach(async () => {
  // Stopped first: a read in progress would hide messages from the purge.
  await watch.stop();
  await sqs.purge();
});
afterAll(async () => {
  await closeHttpServer(server);
  await sqs.stop();
});

async function panelWhere(what: string, test: (p: DeadLetterPanel) => boolean): Promise<DeadLetterPanel> {
  const end = Date.now() + 10_000;
  while (!test(watch.snapshot())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}: ${JSON.stringify(watch.snapshot())}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return watch.snapshot();
}

const replay = async (body?: string, contentType = 'application/json'): Promise<{ status: number; body: Record<string, unknown> }> => {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': contentType }, ...(body === undefined ? {} : { body }) });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

describe('the dead-letter panel', () => {
  it('lists the dead letters with device, code, reason and age, and replays what would not fail again', async () => {
    // Prepare
    await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody('ghost-0001'), code: 'ERR_ATTACH_REJECTED', reason: 'not bound', deviceId: 'ghost-0001' });
    await park(sqs.client, sqs.deadLetterQueueUrl, { body: '{"v":1,"deviceId":"pump-0001","encoding":"base64","payload":"%%"}', code: 'ERR_INVALID_BASE64', reason: 'payload is not valid base64', deviceId: 'pump-0001' });
    const listed = await panelWhere('both dead letters', (p) => p.total === 2);

    // Act
    const dry = await replay('{"dryRun": true}');
    const afterDry = await panelWhere('a re-read after the dry run', (p) => p.replay.last?.dryRun === true && p.total === 2);
    const real = await replay();
    const after = await panelWhere('the ghost gone', (p) => p.total === 1 && p.replay.last?.dryRun === false);
    const relayed = await sqs.receiveAll(sqs.queueUrl);

    // Assess
    const ghost = listed.items.find((i) => i.deviceId === 'ghost-0001')!;
    expect(ghost).toMatchObject({ code: 'ERR_ATTACH_REJECTED', reason: 'not bound', via: 'relay', type: 'event' });
    expect(ghost.permanent).toBeUndefined();
    expect(Date.now() - Date.parse(ghost.at)).toBeLessThan(30_000);
    expect(listed.items.find((i) => i.deviceId === 'pump-0001')).toMatchObject({ code: 'ERR_INVALID_BASE64', permanent: 'ERR_INVALID_BASE64' });
    expect(dry).toEqual({ status: 200, body: expect.objectContaining({ dryRun: true, replayed: 1, skipped: 1, summary: 'would replay 1; skipped 1 that would fail again (ERR_INVALID_BASE64)' }) });
    expect(afterDry.items).toHaveLength(2);
    expect(real).toEqual({ status: 200, body: expect.objectContaining({ dryRun: false, replayed: 1, skipped: 1, failed: 0, notDeleted: 0 }) });
    expect(after.items.map((i) => i.deviceId)).toEqual(['pump-0001']);
    expect(after.replay).toMatchObject({ running: false, last: { replayed: 1, skipped: 1, text: 'replayed 1; skipped 1 that would fail again (ERR_INVALID_BASE64)' } });
    expect(relayed.map((m) => [m.body.includes('ghost-0001'), m.groupId])).toEqual([[true, 'gw-1']]);
  });

  it('refuses a body it does not understand, and a second replay while one runs', async () => {
    for (let i = 0; i < 20; i++) await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody(`ghost-${i}`), code: 'ERR_ATTACH_REJECTED', deviceId: `ghost-${i}` });

    const notJson = await replay('{force');
    // What a form on another web page could send to 127.0.0.1 without a CORS preflight.
    const fromAForm = await replay('force=true', 'application/x-www-form-urlencoded');
    const asText = await replay('{"force": true}', 'text/plain');
    const wrongType = await replay('{"force": "yes"}');
    const both = await Promise.all([replay('{"dryRun": true}'), replay('{"dryRun": true}')]);

    expect(notJson.status).toBe(400);
    expect([fromAForm.status, asText.status]).toEqual([415, 415]);
    expect(wrongType.status).toBe(400);
    expect(String(wrongType.body.message)).toContain('force and dryRun are booleans');
    expect(both.map((r) => r.status).sort()).toEqual([200, 409]);
    expect(both.find((r) => r.status === 409)!.body).toEqual({ message: 'a replay is already running' });
  });

  it('reads no more than it shows, and counts the rest from the queue\'s depth', async () => {
    for (let i = 0; i < 7; i++) await park(sqs.client, sqs.deadLetterQueueUrl, { body: eventBody(`ghost-${i}`), code: 'ERR_ATTACH_REJECTED', deviceId: `ghost-${i}` });
    const small = new DeadLetterWatch({ client: sqs.client, deadLetterQueueUrl: sqs.deadLetterQueueUrl, relayQueueUrl: sqs.queueUrl, gatewayIds: ['gw-1'], everyMs: 100, maxShown: 3 });
    small.start();
    try {
      const end = Date.now() + 10_000;
      while (small.snapshot().listedAt === undefined && Date.now() < end) await new Promise((r) => setTimeout(r, 50));
      const panel = small.snapshot();
      expect(panel.items.map((i) => i.deviceId)).toEqual(['ghost-0', 'ghost-1', 'ghost-2']);
      expect(panel.total).toBe(7);
    } finally {
      await small.stop();
    }
  });
});
