/**
 * Sustained load on the local stack (HTTP API -> ingest -> FIFO queue -> relay -> bridge emulator), with the
 * emulator dropping the relay's connection now and then. Readings are posted at a fixed rate for a fixed time;
 * afterwards every reading that got a 202 must be accounted for, and the counts must add up:
 *
 *   accepted = deleted from the relay queue (confirmed, or dead-lettered by the relay) + still in the relay queue
 *
 * and each accepted reading is at the bridge, in the dead-letter queue, or one of those still in the relay queue.
 * Nothing reaches the bridge that was not posted. Duplicates at the bridge are counted (at-least-once).
 *
 * A record failed back after a dropped connection returns after RELAY_RETRY_SECONDS (5 s), not the queue's
 * visibility timeout, so once the drops stop the queue drains: the test waits (up to `LOAD_DRAIN_SECONDS`, default
 * 60) for the relay queue to empty, then requires every accepted reading at the bridge or in the dead-letter queue.
 *
 * `LOAD_SECONDS` (default 8; the full run is 30), `LOAD_RATE` readings per second (default 20).
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DeleteMessageCommand, ReceiveMessageCommand } from '@aws-sdk/client-sqs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../emulator/demo.js';
import { queueDepth } from '../../local/queue-depth.js';
import { startStack, type Stack } from '../../local/stack.js';
import { parseQueueMessage } from '../../lib/queue/message.js';

const SECONDS = Number(process.env.LOAD_SECONDS ?? 8);
const RATE = Number(process.env.LOAD_RATE ?? 20);
/** How long the test waits, after posting, for the relay queue to empty. */
const DRAIN_SECONDS = Number(process.env.LOAD_DRAIN_SECONDS ?? 60);
/** One reading in this many is for a device the registry does not know: the relay dead-letters it. */
const GHOST_EVERY = 25;
const GHOST = 'ghost-0001';

let stack: Stack;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'iotcore-load-'));
  stack = await startStack({ ports: 'free', dataDir, scheduleEverySeconds: 0, handlerLogLevel: 'ERROR' });
});
afterAll(async () => {
  await stack?.close();
  await rm(dataDir, { recursive: true, force: true });
});

interface Posted {
  marker: string;
  deviceId: string;
  status: number;
}

/** Receives (and deletes) every message now visible on a queue of the stack's SQS server. */
/**
 * Every message of the queue, deleted as read. The stack's dashboard reads the dead-letter queue too
 * (local/dead-letter-watch.ts) and holds what it reads for a moment: an empty receive while messages are in flight
 * means "ask again", not "nothing left".
 */
async function receiveAll(queueUrl: string, timeoutMs = 15_000): Promise<string[]> {
  const bodies: string[] = [];
  const end = Date.now() + timeoutMs;
  for (;;) {
    const { Messages: messages = [] } = await stack.sqs.client.send(new ReceiveMessageCommand({ QueueUrl: queueUrl, MaxNumberOfMessages: 10, WaitTimeSeconds: 0 }));
    if (messages.length === 0) {
      const depth = await queueDepth(stack.sqs.client, queueUrl);
      if (depth.waiting + depth.inFlight === 0 || Date.now() > end) return bodies;
      await sleep(100);
      continue;
    }
    for (const m of messages) {
      bodies.push(m.Body ?? '');
      await stack.sqs.client.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: m.ReceiptHandle }));
    }
  }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, Math.max(0, ms)));

describe('load on the local stack', () => {
  it(`${RATE} readings/s for ${SECONDS} s with dropped connections: every accepted reading accounted for`, { timeout: (SECONDS + DRAIN_SECONDS) * 1000 + 30_000 }, async () => {
    const gateway = stack.registry.gatewayIds[0]!;
    const devices = [...DEMO.devices];
    const total = Math.round(SECONDS * RATE);
    const posted: Posted[] = [];
    let kicks = 0;

    // Every 1 to 2.5 s while posting, drop the relay's connection as soon as it has one open.
    let dropping = true;
    const dropper = (async () => {
      while (dropping) {
        await sleep(1000 + Math.random() * 1500);
        const until = Date.now() + 1000;
        while (dropping && Date.now() < until && !stack.emulator.connections().some((c) => c.deviceId === gateway)) await sleep(5);
        if (dropping && stack.emulator.kick(gateway)) kicks++;
      }
    })();

    // Post at a fixed rate: each reading leaves at its own time, whatever the answers before it took.
    const started = Date.now();
    const requests: Promise<void>[] = [];
    for (let i = 0; i < total; i++) {
      await sleep(started + (i * 1000) / RATE - Date.now());
      const deviceId = i % GHOST_EVERY === GHOST_EVERY - 1 ? GHOST : devices[i % devices.length]!;
      const marker = randomUUID();
      requests.push(
        fetch(`${stack.urls.ingest}/devices/${deviceId}/events/load`, {
          method: 'POST',
          headers: { authorization: `Device-Key ${stack.deviceKey(deviceId)}`, 'content-type': 'application/json' },
          body: JSON.stringify({ marker, i }),
        }).then(
          async (res) => {
            await res.arrayBuffer();
            posted.push({ marker, deviceId, status: res.status });
          },
          () => {
            posted.push({ marker, deviceId, status: 0 });
          },
        ),
      );
    }
    await Promise.all(requests);
    const postingMs = Date.now() - started;
    dropping = false;
    await dropper;

    // Let the relay finish: the drops have stopped, so every failed-back record comes through within a few retries.
    const drainUntil = Date.now() + DRAIN_SECONDS * 1000;
    for (;;) {
      const d = await queueDepth(stack.sqs.client, stack.relayQueue.url);
      if (d.waiting === 0 && d.inFlight === 0 && stack.relayStats().inFlight === 0) break;
      if (Date.now() > drainUntil) break;
      await sleep(200);
    }

    // Where every accepted reading is.
    const accepted = posted.filter((p) => p.status === 202);
    const acceptedMarkers = new Set(accepted.map((p) => p.marker));
    const atBridge = new Map<string, number>();
    for (const e of stack.emulator.registry.events) {
      const text = Buffer.from(e.data, 'base64').toString('utf8');
      const marker = (JSON.parse(text) as { marker?: string }).marker;
      if (marker === undefined) continue;
      expect(acceptedMarkers.has(marker), `the bridge received a reading nobody posted: ${marker}`).toBe(true);
      atBridge.set(marker, (atBridge.get(marker) ?? 0) + 1);
    }
    const deadLetters = (await receiveAll(stack.deadLetterQueue.url)).map((body) => {
      const msg = parseQueueMessage(body);
      return msg.type === 'config-poll' ? '' : (JSON.parse(msg.payload.toString('utf8')) as { marker: string }).marker;
    });
    const inDeadLetter = new Set(deadLetters);
    const depth = await queueDepth(stack.sqs.client, stack.relayQueue.url);
    const stillQueued = depth.waiting + depth.inFlight;
    const stats = stack.relayStats();
    const unaccounted = accepted.filter((p) => !atBridge.has(p.marker) && !inDeadLetter.has(p.marker));
    const duplicates = [...atBridge.values()].reduce((n, c) => n + c - 1, 0);

    console.info(
      `load: ${posted.length} readings posted in ${(postingMs / 1000).toFixed(1)} s (${RATE}/s target), ${accepted.length} accepted (202), ` +
        `${atBridge.size} at the bridge (${duplicates} duplicates), ${inDeadLetter.size} dead-lettered, ${stillQueued} still in the relay queue ` +
        `(${depth.waiting} waiting, ${depth.inFlight} in flight), ${stats.deleted} deleted by the relay in ${stats.batches} batches, ` +
        `${kicks} connections dropped, ${unaccounted.length} neither at the bridge nor dead-lettered`,
    );

    // Every post was answered, and the ingest took every one of them.
    expect(posted).toHaveLength(total);
    expect(accepted).toHaveLength(total);
    // The counts add up: each accepted record was deleted (confirmed or dead-lettered) or is still queued.
    expect(stats.deleted + stillQueued).toBe(accepted.length);
    // The queue drained, and each accepted reading is at the bridge or dead-lettered: none lost.
    expect(stillQueued).toBe(0);
    expect(unaccounted).toEqual([]);
    // What the relay deleted without dead-lettering it, it had confirmed: those are at the bridge.
    expect(atBridge.size).toBeGreaterThanOrEqual(stats.deleted - inDeadLetter.size);
    // Dead letters are the readings of the unknown device only.
    for (const p of accepted.filter((x) => inDeadLetter.has(x.marker))) expect(p.deviceId).toBe(GHOST);
    expect(inDeadLetter.size).toBeGreaterThan(0);
    expect(atBridge.size).toBeGreaterThan(0);
  });
});
