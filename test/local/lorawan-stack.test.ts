/**
 * LoRaWAN on the local stack, over real sockets: the routes `npm start` serves from serverless.yml, the demo devices
 * behind each network server reaching the bridge, their configs going out as downlinks to the network-server
 * stand-in, and the dashboard showing the downlinks and a config refused for its size.
 */
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { chirpstackUplink, ttsUplink } from '../../cli/lorawan-uplinks.js';
import type { DashboardState } from '../../local/dashboard-feed.js';
import { queueDepth } from '../../local/queue-depth.js';
import type { RecordedDownlink } from '../../local/network-server-stand-in.js';
import { startStack, type Stack } from '../../local/stack.js';
import { until } from '../helpers/until.js';

let stack: Stack;
let dataDir: string;
let secrets: Record<string, { webhookSecret: string }>;
let fCnt = 100;

beforeAll(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'iotcore-lorawan-stack-'));
  stack = await startStack({ ports: 'free', dataDir, scheduleEverySeconds: 0, handlerLogLevel: 'ERROR' });
  secrets = JSON.parse(await readFile(stack.lorawan.secretsFile, 'utf8')) as typeof secrets;
});

afterAll(async () => {
  await stack?.close();
  await rm(dataDir, { recursive: true, force: true });
});

async function uplink(stackName: 'ttn' | 'chirpstack'): Promise<{ status: number; body: any }> {
  const integration = stackName === 'ttn' ? stack.lorawan.integrations.tts : stack.lorawan.integrations.chirpstack;
  const body = stackName === 'ttn' ? ttsUplink({ fCnt: fCnt++ }) : chirpstackUplink({ fCnt: fCnt++ });
  const res = await fetch(`${stack.urls.ingest}/lorawan/${integration}${stackName === 'chirpstack' ? '?event=up' : ''}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-webhook-secret': secrets[integration]!.webhookSecret },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: await res.json() };
}

/** The relay queue empty: every record relayed and deleted, so the relay has noted its devices for the poller. */
const drained = () =>
  until('an empty relay queue', async () => {
    const d = await queueDepth(stack.sqs.client, stack.relayQueue.url);
    return d.waiting === 0 && d.inFlight === 0 ? true : undefined;
  });

let lastPoll = 0;
/** A run of the poller; a second apart from the last, whose jobs SQS would otherwise drop as repeats. */
async function poll(): Promise<void> {
  await drained();
  const wait = lastPoll + 1100 - Date.now();
  if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  lastPoll = Date.now();
  await stack.runSchedules();
}

const eventsOf = (deviceId: string) => stack.emulator.registry.events.filter((e) => e.attributes.deviceId === deviceId);
const dashboard = async (): Promise<DashboardState> => (await (await fetch(`${stack.urls.dashboard}/api/state`)).json()) as DashboardState;

describe('LoRaWAN on the local stack', () => {
  it('carries an uplink of each network server to the bridge, then sends each device its config as a downlink', async () => {
    const { tts, chirpstack } = stack.lorawan.devices;
    expect((await uplink('ttn')).status).toBe(202);
    expect((await uplink('chirpstack')).status).toBe(202);
    const [ttsEvent] = await until('the uplinks at the bridge', () => (eventsOf(tts).length > 0 && eventsOf(chirpstack).length > 0 ? eventsOf(tts) : undefined));
    expect(ttsEvent!.attributes.subFolder).toBe('lorawan/2');
    expect(JSON.parse(Buffer.from(eventsOf(chirpstack)[0]!.data, 'base64').toString())).toMatchObject({ fPort: 2, rssi: -94, snr: 8.5 });

    // The relay noted both devices; the poller fetches their configs.
    await poll();
    const config = (id: string) => stack.emulator.registry.getDevice(stack.registry.registry, id).config.binaryData;
    await until('the configs in the store', async () => ((await dashboard()).lorawan?.devices.every((d) => d.storeConfigVersion === 1) ? true : undefined));

    const answers = [await uplink('ttn'), await uplink('chirpstack')];
    expect(answers.map((a) => a.body.downlink)).toEqual([
      { status: 'sent', version: 1 },
      { status: 'sent', version: 1 },
    ]);
    const recorded = (await (await fetch(`${stack.urls.networkServer}/downlinks`)).json()) as RecordedDownlink[];
    expect(recorded.map((d) => [d.networkServer, d.deviceId ?? `lora-${d.devEui}`, d.fPort, d.data])).toEqual([
      ['tts', tts, 10, config(tts)],
      ['chirpstack', chirpstack, 10, config(chirpstack)],
    ]);
    const state = await until('the dashboard showing the downlinks', async () => {
      const s = await dashboard();
      return s.lorawan?.downlinks.length === 2 && s.lorawan.devices.every((d) => d.delivered?.version === 1) ? s : undefined;
    });
    expect(state.lorawan!.devices.map((d) => d.delivered?.via)).toEqual([stack.lorawan.integrations.tts, stack.lorawan.integrations.chirpstack]);
  });

  it('shows a config too large for the frames on the dashboard, and sends nothing', async () => {
    const { tts } = stack.lorawan.devices;
    const big = Buffer.from(`{"schedule":"${'x'.repeat(80)}"}`).toString('base64');
    // As an operator would change it: through the bridge's device-manager API.
    const res = await fetch(`${stack.urls.admin}/v1/projects/demo-project/locations/us-central1/registries/demo-registry/devices/${tts}:modifyCloudToDeviceConfig`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ binaryData: big }),
    });
    expect(res.status).toBe(200);
    await poll();
    await until('version 2 in the store', async () => ((await dashboard()).lorawan?.devices.find((d) => d.deviceId === tts)?.storeConfigVersion === 2 ? true : undefined));
    const before = stack.lorawan.standIn.downlinks().length;

    const answer = await uplink('ttn');
    expect(answer.body.downlink).toEqual({ status: 'too-large', version: 2 });
    expect(stack.lorawan.standIn.downlinks()).toHaveLength(before);
    const row = await until('the refusal on the dashboard', async () => (await dashboard()).lorawan?.devices.find((d) => d.deviceId === tts && d.refused !== undefined));
    expect(row.refused).toMatchObject({ version: 2, reason: 'config version 2 is 95 bytes; integration ttn-demo sends at most 51 per downlink' });
    expect(row.delivered?.version).toBe(1);
  });
});
