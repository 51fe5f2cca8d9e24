/**
 * How soon a refused publish is known over MQTT 3.1.1 and over MQTT 5.0 (RELAY_MQTT_VERSION), against the emulator
 * with `mqtt5` on, a latency on every packet it sends, and its errors-topic messages delivered or lost (`dropErrors`):
 *
 * 1. a bare client: a state over 1/s (the bridge detaches the device) and then an event of the detached device; the
 *    time from each PUBLISH to its PUBACK reason code (5.0 only) and to its errors-topic message;
 * 2. the relay: one session of 1 state + 40 events of a device detached by that state (more than the publish
 *    window of 32, so some are still queued when the refusal comes), and 8 events of neighbours; how long the session
 *    takes, how the records end, and how many of the device's PUBLISHes reached the bridge after its detachment.
 *
 *   npx tsx bench/mqtt5-refusals.ts [--latency-ms 50] [--runs 5]
 *
 * Prints a JSON summary (medians over the runs) on stdout.
 */
import { createPrivateKey } from 'node:crypto';
import { parseArgs } from 'node:util';
import mqtt from 'mqtt';
import type { MqttClient } from 'mqtt';
import type { IPublishPacket, Packet } from 'mqtt-packet';
import { startEmulator, type Emulator } from '../emulator/index.js';
import { GatewaySession } from '../lib/gateway/session.js';
import { clientId } from '../lib/iotcore/topics.js';
import { signGatewayJwt } from '../lib/jwt.js';
import { BENCH_GATEWAY, BENCH_REGISTRY, makeBenchFleet } from './bench-fleet.js';
import { median } from './statistics.js';

const { values } = parseArgs({ options: { 'latency-ms': { type: 'string' }, runs: { type: 'string' } } });
const LATENCY_MS = Number(values['latency-ms'] ?? 50);
const RUNS = Number(values.runs ?? 5);
const PUBACK_TIMEOUT_MS = 5000;
const NEVER = 'never';

const fleet = await makeBenchFleet(400);
const key = createPrivateKey(fleet.gatewayPrivateKeyPem);
const jwt = (): Promise<string> => signGatewayJwt({ key, alg: 'ES256', project: BENCH_REGISTRY.project });
let nextDevice = 0;
const freshDevice = (): string => fleet.devices[nextDevice++]!;

interface Timings {
  /** ms from PUBLISH to its PUBACK's reason code, or 'never'. */
  puback: number | typeof NEVER;
  /** ms from PUBLISH to the errors-topic message naming it, or 'never'. */
  error: number | typeof NEVER;
}

/** Connects a bare gateway client, subscribed to its errors topic. */
async function gateway(emulator: Emulator, version: 4 | 5): Promise<MqttClient> {
  const client = await mqtt.connectAsync(emulator.mqttUrl, {
    protocolVersion: version,
    clientId: clientId(BENCH_REGISTRY, BENCH_GATEWAY),
    username: 'unused',
    password: await jwt(),
    ca: emulator.ca,
    reconnectPeriod: 0,
  });
  client.on('error', () => {});
  await client.subscribeAsync(`/devices/${BENCH_GATEWAY}/errors`, { qos: 0 });
  return client;
}

/**
 * Publishes at QoS 1 and times the PUBACK with a failure reason code and the errors-topic message about it (one that
 * names the packet's topic, or the device when it names no packet: a detachment).
 */
function timeRefusal(client: MqttClient, topic: string, payload: string, waitMs: number): Promise<Timings> {
  const deviceId = topic.split('/')[2];
  return new Promise((resolve) => {
    const sent = performance.now();
    const out: Timings = { puback: NEVER, error: NEVER };
    let id: number | undefined;
    const onSend = (p: Packet): void => {
      if (p.cmd === 'publish' && (p as IPublishPacket).topic === topic) id ??= p.messageId;
    };
    const onReceive = (p: Packet): void => {
      if (p.cmd === 'puback' && p.messageId === id && (p.reasonCode ?? 0) >= 0x80) out.puback = performance.now() - sent;
      if (p.cmd !== 'publish' || !p.topic.endsWith('/errors') || out.error !== NEVER) return;
      const error = JSON.parse(p.payload.toString()) as { device_id?: string; mqtt_message_info?: { topic?: string } };
      const about = error.mqtt_message_info === undefined ? error.device_id === deviceId : error.mqtt_message_info.topic === topic;
      if (about) out.error = performance.now() - sent;
    };
    client.on('packetsend', onSend);
    client.on('packetreceive', onReceive);
    client.publish(topic, payload, { qos: 1 }, () => {});
    setTimeout(() => {
      client.off('packetsend', onSend);
      client.off('packetreceive', onReceive);
      resolve(out);
    }, waitMs);
  });
}

async function bareClient(emulator: Emulator, version: 4 | 5): Promise<{ detachingState: Timings; unattachedEvent: Timings }> {
  const client = await gateway(emulator, version);
  const device = freshDevice();
  await client.publishAsync(`/devices/${device}/attach`, '{}', { qos: 1 });
  await client.publishAsync(`/devices/${device}/state`, 's1', { qos: 1 });
  // Wait past any answer that can come: the errors topic's message, when it is not lost, follows within the latency.
  const waitMs = LATENCY_MS * 4 + 200;
  const detachingState = await timeRefusal(client, `/devices/${device}/state`, 's2', waitMs);
  const unattachedEvent = await timeRefusal(client, `/devices/${device}/events`, 'e', waitMs);
  await client.endAsync(true);
  return { detachingState, unattachedEvent };
}

async function relaySession(emulator: Emulator, version: 4 | 5): Promise<{ elapsedMs: number; outcomes: Record<string, number>; sentAfterDetach: number }> {
  const victim = freshDevice();
  const neighbours = [freshDevice(), freshDevice(), freshDevice(), freshDevice()];
  const base = { registry: BENCH_REGISTRY, gatewayId: BENCH_GATEWAY, host: emulator.host, port: emulator.port, extraCaPem: emulator.ca, protocolVersion: version, pubackTimeoutMs: PUBACK_TIMEOUT_MS };
  const record = (key: string, deviceId: string, kind: 'event' | 'state') => ({ key, deviceId, kind, payload: Buffer.from(key) });
  // A first session stores a state for the victim, so that the next one's state comes within the same second.
  await new GatewaySession({ ...base, jwt: await jwt(), deadline: Date.now() + 20_000 }).run(async (s) => {
    await s.attach([{ deviceId: victim }]);
    await s.publish([record(`${victim}-s1`, victim, 'state')]);
  });
  const records = [
    record(`${victim}-s2`, victim, 'state'),
    ...Array.from({ length: 40 }, (_, i) => record(`${victim}-e${i}`, victim, 'event')),
    ...neighbours.flatMap((d) => [record(`${d}-e1`, d, 'event'), record(`${d}-e2`, d, 'event')]),
  ];
  const errorsBefore = emulator.registry.errors.length;
  const started = performance.now();
  const report = await new GatewaySession({ ...base, jwt: await jwt(), deadline: Date.now() + 20_000 }).run(async (s) => {
    await s.attach([victim, ...neighbours].map((deviceId) => ({ deviceId })));
    await s.publish(records);
  });
  const elapsedMs = performance.now() - started;
  const outcomes: Record<string, number> = {};
  for (const r of report.records.values()) {
    const name = r.status === 'confirmed' ? 'confirmed' : r.code;
    outcomes[name] = (outcomes[name] ?? 0) + 1;
  }
  const sentAfterDetach = emulator.registry.errors.slice(errorsBefore).filter((e) => e.payload.error_type === 'GATEWAY_DEVICE_NOT_FOUND').length;
  return { elapsedMs, outcomes, sentAfterDetach };
}

const medianOf = (xs: (number | typeof NEVER)[]): number | typeof NEVER => {
  const numbers = xs.filter((x): x is number => x !== NEVER);
  return numbers.length < xs.length ? NEVER : Math.round(median(numbers) * 10) / 10;
};

const emulator = await startEmulator({ registry: fleet.document, adminPort: null, mqtt5: true, latencyMs: LATENCY_MS });
const summary: Record<string, unknown> = { latencyMs: LATENCY_MS, runs: RUNS, pubackTimeoutMs: PUBACK_TIMEOUT_MS };
try {
  for (const errors of ['delivered', 'lost'] as const) {
    emulator.setFaults({ dropErrors: errors === 'lost' });
    for (const version of [4, 5] as const) {
      const bare = [];
      const relay = [];
      for (let i = 0; i < RUNS; i++) {
        bare.push(await bareClient(emulator, version));
        relay.push(await relaySession(emulator, version));
      }
      summary[`errors ${errors}, MQTT ${version === 4 ? '3.1.1' : '5.0'}`] = {
        stateDetachingDevice: { pubackMs: medianOf(bare.map((b) => b.detachingState.puback)), errorMs: medianOf(bare.map((b) => b.detachingState.error)) },
        eventOfUnattachedDevice: { pubackMs: medianOf(bare.map((b) => b.unattachedEvent.puback)), errorMs: medianOf(bare.map((b) => b.unattachedEvent.error)) },
        relaySessionMs: medianOf(relay.map((r) => r.elapsedMs)),
        relayOutcomes: relay[0]!.outcomes,
        victimPublishesAfterDetach: medianOf(relay.map((r) => r.sentAfterDetach)),
      };
    }
  }
} finally {
  await emulator.close();
}
process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
