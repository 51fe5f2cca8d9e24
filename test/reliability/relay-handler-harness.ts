/**
 * The relay handler as Lambda runs it, configured only through its environment: gateway keys in a key file, the
 * bridge's CA in a CA file, the bridge endpoint (the emulator, or a proxy in front of it), and SQS calls through
 * the real SDK to a stand-in endpoint that accepts them and records them.
 *
 * @example
 * const relay = await startRelayHandler({ fleet, bridge: emulator, env: { RELAY_DEADLINE_MARGIN_MS: '400' } });
 * const response = await relay.handler(sqsEvent(records), lambdaContext(2_000));
 * await relay.close();
 */
import { createHash } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Logger } from '@aws-lambda-powertools/logger';
import type { Metrics } from '@aws-lambda-powertools/metrics';
import { createRelayHandler, type RelayHandler } from '../../handlers/relay.js';
import type { KeySource } from '../../lib/keys/key-source.js';
import { sqsQueueActions } from '../../lib/queue/queue-actions.js';
import type { Fleet } from '../helpers/emulator-fixtures.js';
import { startSqsStandIn, type SqsStandIn } from '../helpers/local-sqs.js';
import { GW } from '../helpers/relay-fixtures.js';

export interface RelayHandlerHarness {
  handler: RelayHandler;
  /** The environment the handler was built from. */
  env: Record<string, string>;
  /** Every SQS call the handler made. */
  sqs: SqsStandIn;
  /** The PEM text of every gateway private key in the key file. */
  privateKeyPems: string[];
  close(): Promise<void>;
}

export interface RelayHandlerHarnessOptions {
  fleet: Fleet;
  /** Where the handler connects, and the CA it must trust there. */
  bridge: { host: string; port: number; ca: string | undefined };
  env?: Record<string, string>;
  logger?: Logger;
  metrics?: Metrics;
  /** Instead of the key file the harness writes (e.g. a Secrets Manager source). */
  keySource?: KeySource;
}

export async function startRelayHandler(o: RelayHandlerHarnessOptions): Promise<RelayHandlerHarness> {
  const sqs = await startSqsStandIn((call) => {
    if (call.action === 'SendMessage') {
      return { status: 200, body: { MessageId: 'dead-letter-1', MD5OfMessageBody: createHash('md5').update(String(call.input.MessageBody)).digest('hex') } };
    }
    const entries = (call.input.Entries ?? []) as { Id: string }[];
    return { status: 200, body: { Successful: entries.map((e) => ({ Id: e.Id })), Failed: [] } };
  });
  const dir = await mkdtemp(join(tmpdir(), 'relay-harness-'));
  const gateways = [GW.assoc, GW.token, GW.east, GW.west];
  const keys = Object.fromEntries(gateways.map((g) => [g, { privateKey: o.fleet.keys[g]!.pair.privateKeyPem }]));
  const keyFile = join(dir, 'gateway-keys.json');
  await writeFile(keyFile, JSON.stringify(keys), { mode: 0o600 });
  const env: Record<string, string> = {
    IOTCORE_PROJECT: o.fleet.project,
    IOTCORE_LOCATION: o.fleet.location,
    IOTCORE_REGISTRY: o.fleet.registryId,
    IOTCORE_GATEWAY_IDS: gateways.join(','),
    IOTCORE_MQTT_HOST: o.bridge.host,
    IOTCORE_MQTT_PORT: String(o.bridge.port),
    GATEWAY_KEY_FILE: keyFile,
    RELAY_QUEUE_URL: sqs.queueUrl,
    RELAY_DEAD_LETTER_QUEUE_URL: `${sqs.endpoint}/123456789012/relay-dlq.fifo`,
    POWERTOOLS_SERVICE_NAME: 'iotcore-relay',
    ...o.env,
  };
  if (o.bridge.ca !== undefined) {
    env.IOTCORE_CA_FILE = join(dir, 'bridge-ca.pem');
    await writeFile(env.IOTCORE_CA_FILE, o.bridge.ca);
  }
  const handler = createRelayHandler({
    env,
    queueActions: sqsQueueActions(() => sqs.client),
    ...(o.logger === undefined ? {} : { logger: o.logger }),
    ...(o.metrics === undefined ? {} : { metrics: o.metrics }),
    ...(o.keySource === undefined ? {} : { keySource: o.keySource }),
  });
  return {
    handler,
    env,
    sqs,
    privateKeyPems: Object.values(keys).map((k) => k.privateKey),
    close: async () => {
      await sqs.stop();
      await rm(dir, { recursive: true, force: true });
    },
  };
}
