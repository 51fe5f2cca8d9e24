/**
 * The baseline of the round-trip comparison: a gateway client written the way the public IoT Core gateway samples
 * are (Google's and ClearBlade's Python and Node.js samples), minus their sleeps. The samples attach a device, sleep
 * five seconds, publish its messages with a sleep between them, and detach it; this client waits for each
 * acknowledgement instead of sleeping, and does one thing at a time:
 *
 *   connect -> subscribe to the errors topic -> for each device: attach, publish its records one by one, detach
 *   -> disconnect
 *
 * Every step awaits its SUBACK or PUBACK before the next one starts, so a batch costs about
 * 2 + devices x 2 + records round trips (plus the TCP and TLS handshakes on a real link). Devices are served in
 * the order they first appear, each device's records in queue order.
 *
 * Kept on the generous side: it attaches each device once for all its records (rather than once per record), and it
 * uses whatever TLS version the bridge offers, where the samples pin TLS 1.2 and its extra handshake round trip.
 * Nagle's algorithm is left on, as in the samples; a client that never has two packets in flight does not suffer
 * from it.
 *
 * @example
 * const published = await runSampleClient({ endpoint, registry, gatewayId: 'gw-bench', jwt, messages });
 */
import { attachTopic, detachTopic, errorsTopic, eventsTopic, type RegistryPath } from '../lib/iotcore/topics.js';
import type { BenchMessage } from './bench-fleet.js';
import { connectGateway, within, type BridgeEndpoint } from './mqtt-gateway-client.js';

export interface SampleClientJob {
  endpoint: BridgeEndpoint;
  registry: RegistryPath;
  gatewayId: string;
  jwt: string;
  messages: readonly BenchMessage[];
  /** Bound on every single acknowledgement; default 5000 ms. */
  ackTimeoutMs?: number;
}

export interface SampleClientResult {
  /** Records whose PUBACK came back. */
  published: number;
  /** Messages that arrived on the errors topic (none in a healthy run). */
  gatewayErrors: number;
}

export async function runSampleClient(job: SampleClientJob): Promise<SampleClientResult> {
  const ackMs = job.ackTimeoutMs ?? 5000;
  const byDevice = new Map<string, BenchMessage[]>();
  for (const m of job.messages) {
    const list = byDevice.get(m.deviceId) ?? [];
    list.push(m);
    byDevice.set(m.deviceId, list);
  }

  const client = await connectGateway({ endpoint: job.endpoint, registry: job.registry, gatewayId: job.gatewayId, jwt: job.jwt });
  let gatewayErrors = 0;
  let published = 0;
  const errors = errorsTopic(job.gatewayId);
  client.on('message', (topic) => {
    if (topic === errors) gatewayErrors++;
  });
  try {
    // QoS 0 is the only QoS the bridge allows on the errors topic.
    await within(ackMs, 'SUBSCRIBE errors', client.subscribeAsync(errors, { qos: 0 }));
    for (const [deviceId, messages] of byDevice) {
      await within(ackMs, `attach ${deviceId}`, client.publishAsync(attachTopic(deviceId), '{}', { qos: 1 }));
      for (const m of messages) {
        await within(ackMs, `publish for ${deviceId}`, client.publishAsync(eventsTopic(deviceId), m.payload, { qos: 1 }));
        published++;
      }
      await within(ackMs, `detach ${deviceId}`, client.publishAsync(detachTopic(deviceId), '{}', { qos: 1 }));
    }
    await client.endAsync();
  } catch (e) {
    client.end(true);
    throw e;
  }
  return { published, gatewayErrors };
}
