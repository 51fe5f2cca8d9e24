/**
 * The throughput reference: the least a gateway client can do with mqtt.js to deliver a batch, with nothing of the
 * relay's bookkeeping (no queue parsing, no per-record outcome, no error correlation, no deadline). It follows the
 * same protocol steps as a relay session, so the two move the same packets:
 *
 *   connect -> subscribe to the errors topic -> attach every device (all in flight)
 *   -> publish at QoS 1 with at most `window` unacknowledged -> detach every device (all in flight) -> disconnect
 *
 * Nagle's algorithm is off, as on the relay's socket, and the client trusts the system roots plus the emulator's CA,
 * as the relay does: the comparison is about what each client does per message, not about a socket option or a
 * certificate store.
 *
 * @example
 * const { acknowledged } = await runPlainLoop({ endpoint, registry, gatewayId: 'gw-bench', jwt, messages, window: 32 });
 */
import { attachTopic, detachTopic, errorsTopic, eventsTopic, type RegistryPath } from '../lib/iotcore/topics.js';
import type { BenchMessage } from './bench-fleet.js';
import { connectGateway, within, type BridgeEndpoint } from './mqtt-gateway-client.js';

export interface PlainLoopJob {
  endpoint: BridgeEndpoint;
  registry: RegistryPath;
  gatewayId: string;
  jwt: string;
  messages: readonly BenchMessage[];
  /** QoS 1 publishes allowed unacknowledged at once. */
  window: number;
  ackTimeoutMs?: number;
}

export interface PlainLoopResult {
  acknowledged: number;
  gatewayErrors: number;
}

export async function runPlainLoop(job: PlainLoopJob): Promise<PlainLoopResult> {
  const ackMs = job.ackTimeoutMs ?? 5000;
  const devices = [...new Set(job.messages.map((m) => m.deviceId))];
  // Trusting what the relay trusts, so that both pay for the same certificate store once per process.
  const client = await connectGateway({ endpoint: job.endpoint, registry: job.registry, gatewayId: job.gatewayId, jwt: job.jwt, noDelay: true, trust: 'system-roots-and-endpoint-ca' });
  const errors = errorsTopic(job.gatewayId);
  let gatewayErrors = 0;
  client.on('message', (topic) => {
    if (topic === errors) gatewayErrors++;
  });
  try {
    await within(ackMs, 'SUBSCRIBE errors', client.subscribeAsync(errors, { qos: 0 }));
    await within(ackMs, 'attaches', Promise.all(devices.map((d) => client.publishAsync(attachTopic(d), '{}', { qos: 1 }))));
    const acknowledged = await publishWindowed(job, (m) => within(ackMs, `publish for ${m.deviceId}`, client.publishAsync(eventsTopic(m.deviceId), m.payload, { qos: 1 })));
    await within(ackMs, 'detaches', Promise.all(devices.map((d) => client.publishAsync(detachTopic(d), '{}', { qos: 1 }))));
    await client.endAsync();
    return { acknowledged, gatewayErrors };
  } catch (e) {
    client.end(true);
    throw e;
  }
}

/** Keeps `window` publishes in flight: each acknowledgement lets the next message go. */
function publishWindowed(job: PlainLoopJob, send: (m: BenchMessage) => Promise<unknown>): Promise<number> {
  return new Promise<number>((resolve, reject) => {
    let next = 0;
    let inFlight = 0;
    let acknowledged = 0;
    let failed = false;
    const fill = (): void => {
      while (!failed && inFlight < job.window && next < job.messages.length) {
        const m = job.messages[next++]!;
        inFlight++;
        send(m).then(
          () => {
            inFlight--;
            acknowledged++;
            fill();
          },
          (e: unknown) => {
            failed = true;
            reject(e);
          },
        );
      }
      if (!failed && inFlight === 0 && next >= job.messages.length) resolve(acknowledged);
    };
    fill();
  });
}
