/**
 * The local stack end to end, over real sockets: a reading posted to the HTTP API travels through the queue and the
 * relay to the bridge emulator exactly once; the poller brings the device's config back through the bridge into
 * the config store, where the config route serves it.
 */
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GetQueueAttributesCommand } from '@aws-sdk/client-sqs';
import { queueDepth } from '../../local/queue-depth.js';
import { projectRoot, startStack, type Stack } from '../../local/stack.js';
import { until } from '../helpers/until.js';

let stack: Stack;
let dataDir: string;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'iotcore-stack-'));
  // The poller always polls pump-0002 here, as a deployment lists devices in its pollDeviceIds parameter.
  stack = await startStack({ ports: 'free', dataDir, scheduleEverySeconds: 0, handlerLogLevel: 'ERROR', params: { pollDeviceIds: 'pump-0002' } });
});

afterAll(async () => {
  await stack?.close();
  await rm(dataDir, { recursive: true, force: true });
});

const readingsWith = (marker: string) => stack.emulator.registry.events.filter((e) => Buffer.from(e.data, 'base64').toString('utf8').includes(marker));

describe('the local stack', () => {
  it('creates the queues as serverless.yml declares them', async () => {
    // The timing file serverless.yml reads the visibility timeout from; the stack must have resolved it the same way.
    const timing = createRequire(import.meta.url)(join(projectRoot(), 'deploy/relay-timing.cjs')) as { queueVisibilityTimeoutSeconds: number };
    const { Attributes: a } = await stack.sqs.client.send(
      new GetQueueAttributesCommand({ QueueUrl: stack.relayQueue.url, AttributeNames: ['All'] }),
    );
    const redrive = JSON.parse(a!.RedrivePolicy!) as { deadLetterTargetArn: string; maxReceiveCount: number };

    expect(a!.FifoQueue).toBe('true');
    expect(a!.ContentBasedDeduplication).toBe('true');
    expect(Number(a!.VisibilityTimeout)).toBe(timing.queueVisibilityTimeoutSeconds);
    expect(redrive.deadLetterTargetArn).toBe(stack.deadLetterQueue.arn);
    expect(Number(redrive.maxReceiveCount)).toBe(stack.relayQueue.spec.redrive!.maxReceiveCount);
    expect(stack.deadLetterQueue.spec.fifo).toBe(true);
  });

  it('carries a reading posted over HTTP to the bridge exactly once', async () => {
    // Prepare
    const marker = randomUUID();

    // Act: what the banner's curl line does.
    const res = await fetch(`${stack.urls.ingest}/devices/pump-0001/events/readings`, {
      method: 'POST',
      headers: { authorization: `Device-Key ${stack.deviceKey('pump-0001')}`, 'content-type': 'application/json' },
      body: JSON.stringify({ temperature: 21.5, marker }),
    });
    const answer = (await res.json()) as { messageIds?: string[] };
    const [reading] = await until('the reading at the bridge', () => (readingsWith(marker).length > 0 ? readingsWith(marker) : undefined));
    // The queue drained: the record was confirmed and deleted, so nothing can bring it back.
    await until('an empty relay queue', async () => {
      const d = await queueDepth(stack.sqs.client, stack.relayQueue.url);
      return d.waiting === 0 && d.inFlight === 0 ? d : undefined;
    });
    // Two more polls of the queue by the event source, for a duplicate to show up if there were one.
    await new Promise((r) => setTimeout(r, 2500));

    // Assess
    expect(res.status).toBe(202);
    expect(answer.messageIds).toHaveLength(1);
    expect(readingsWith(marker)).toHaveLength(1);
    expect(reading!.attributes).toMatchObject({ deviceId: 'pump-0001', subFolder: 'readings', gatewayId: stack.registry.gatewayIds[0] });
    expect(await queueDepth(stack.sqs.client, stack.deadLetterQueue.url)).toEqual({ waiting: 0, inFlight: 0 });
  });

  it('answers an unknown route as API Gateway does, without a handler', async () => {
    const res = await fetch(`${stack.urls.ingest}/nowhere`, { method: 'POST', body: 'x' });
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({ message: 'Not Found' });
  });

  it('refuses a reading with another device key at the ingest, and nothing reaches the queue', async () => {
    const marker = randomUUID();
    const res = await fetch(`${stack.urls.ingest}/devices/pump-0002/events`, {
      method: 'POST',
      headers: { authorization: `Device-Key ${stack.deviceKey('pump-0001')}` },
      body: marker,
    });
    expect(res.status).toBe(401);
    expect(await queueDepth(stack.sqs.client, stack.relayQueue.url)).toEqual({ waiting: 0, inFlight: 0 });
  });

  it('runs the poller, whose job goes through the queue to a gateway session that fetches the config from the bridge', async () => {
    // Prepare
    const sessionsBefore = stack.relayStats().batches;

    // Act
    await stack.runSchedules();
    await until('the relay batch of the poll job', () => (stack.relayStats().batches > sessionsBefore ? true : undefined));
    const sent = stack.emulator.registry.getDevice(stack.registry.registry, 'pump-0002').lastConfigSendTime;

    // Assess
    expect(sent).toBeDefined();
    expect(Date.parse(sent!)).toBeGreaterThan(Date.now() - 10_000);
    expect(stack.relayStats()).toMatchObject({ retried: 0, held: 0 });
  });

  it('shows the reading on the dashboard feed', async () => {
    const state = (await (await fetch(`${stack.urls.dashboard}/api/state`)).json()) as {
      readings: { total: number; recent: { deviceId: string }[] };
      gateways: { id: string; sessions: number }[];
    };
    expect(state.readings.total).toBeGreaterThanOrEqual(1);
    expect(state.readings.recent.some((r) => r.deviceId === 'pump-0001')).toBe(true);
    expect(state.gateways.find((g) => g.id === 'gw-1')?.sessions).toBeGreaterThanOrEqual(2);
  });

  it('writes the ClearBlade service account (0600) that opens the emulator\'s ClearBlade REST form, and names it in the banner', async () => {
    expect(stack.serviceAccountFile).toBe(join(dataDir, 'clearblade-service-account.json'));
    expect((await stat(stack.serviceAccountFile)).mode & 0o777).toBe(0o600);
    const account = JSON.parse(await readFile(stack.serviceAccountFile, 'utf8')) as { systemKey: string; token: string; url: string; project: string };
    expect(account.url).toBe(stack.urls.admin);
    expect(stack.banner()).toContain('clearblade-service-account.json');
    const res = await fetch(`${account.url}/api/v/1/code/${account.systemKey}/getRegistryCredentials`, {
      method: 'POST',
      headers: { 'ClearBlade-UserToken': account.token },
      body: JSON.stringify({ project: account.project, region: stack.registry.location, registry: stack.registry.registry }),
    });
    expect(res.status).toBe(200);
    const creds = (await res.json()) as { systemKey: string; serviceAccountToken: string; url: string };
    const list = await fetch(`${creds.url}/api/v/4/webhook/execute/${creds.systemKey}/cloudiot_devices?gatewayListOptions.associationsGatewayId=gw-1`, {
      headers: { 'ClearBlade-UserToken': creds.serviceAccountToken },
    });
    // The demo devices, and the two LoRaWAN demo devices, are bound to the one demo gateway.
    expect(((await list.json()) as { devices: { id: string }[] }).devices.map((d) => d.id).sort()).toEqual(
      ['lora-0004a30b001c0531', 'pump-0001', 'pump-0002', 'pump-0003', 'soil-probe-01'],
    );
  });
});
