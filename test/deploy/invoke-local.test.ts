/**
 * `npx serverless invoke local --function relay --path events/relay.json`, exactly as docs/deploy.md tells a user
 * to run it against the local stack: the framework bundles the relay with the deployment's esbuild settings, runs
 * the handler on the example event, and the handler relays both records into a running emulator over real TLS.
 * One invocation (the CLI and the bundling take a few seconds).
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { SQSBatchResponse, SQSEvent } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEMO } from '../../emulator/demo.js';
import { startEmulator, type Emulator } from '../../emulator/index.js';
import { makeFleet } from '../helpers/emulator-fixtures.js';
import { invocationResult, PROJECT_ROOT, runServerless, type CliRun } from './serverless-cli.js';

describe('serverless invoke local --function relay', () => {
  let scratch: string;
  let emulator: Emulator;
  let run: CliRun;
  let event: SQSEvent;

  beforeAll(async () => {
    // Prepare: the registry of the `local` stage (serverless.yml params.local, the emulator's demo registry) with
    // the gateway the example event's message group names, and the device its records are for.
    scratch = await mkdtemp(join(tmpdir(), 'iotcore-relay-invoke-'));
    event = JSON.parse(await readFile(join(PROJECT_ROOT, 'events', 'relay.json'), 'utf8')) as SQSEvent;
    const gatewayId = event.Records[0]!.attributes.MessageGroupId!;
    const deviceId = (JSON.parse(event.Records[0]!.body) as { deviceId: string }).deviceId;
    const fleet = await makeFleet({
      project: DEMO.project,
      location: DEMO.location,
      registryId: DEMO.registry,
      gateways: [{ id: gatewayId, bound: [deviceId] }],
      devices: [{ id: deviceId, keyless: true }],
    });
    emulator = await startEmulator({ registry: fleet.document, adminPort: null });
    const keyFile = join(scratch, `${gatewayId}.pem`);
    await writeFile(keyFile, fleet.keys[gatewayId]!.pair.privateKeyPem, { mode: 0o600 });

    // Act: the documented command. Paths are absolute: the framework runs the handler from its build folder.
    run = await runServerless(
      [
        'invoke', 'local', '--function', 'relay', '--path', 'events/relay.json',
        '--stage', 'local', '--param', 'stackReferences=environment',
        '--env', `IOTCORE_MQTT_HOST=${emulator.host}`,
        '--env', `IOTCORE_MQTT_PORT=${emulator.port}`,
        '--env', `IOTCORE_CA_FILE=${emulator.caFile!}`,
        '--env', `GATEWAY_KEY_FILE=${keyFile}`,
      ],
      { scratchDir: scratch },
    );
  }, 120_000);

  afterAll(async () => {
    await emulator?.close();
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  it('exits 0 and reports no record as failed', () => {
    expect(run.code, run.output).toBe(0);
    const result = invocationResult(run.stdout) as SQSBatchResponse;
    expect(result, run.output).toEqual({ batchItemFailures: [] });
  });

  it('relayed the event, with its subfolder, and the state of the example event into the bridge', () => {
    // Assess: what the emulator received, as Pub/Sub and the device's state history would show it.
    const [eventRecord, stateRecord] = event.Records.map((r) => JSON.parse(r.body) as { deviceId: string; subfolder?: string; payload: string });
    const received = emulator.registry.events.filter((m) => m.attributes.deviceId === eventRecord!.deviceId);
    expect(received, run.output).toHaveLength(1);
    expect(received[0]!.attributes).toMatchObject({ subFolder: eventRecord!.subfolder, gatewayId: event.Records[0]!.attributes.MessageGroupId });
    expect(Buffer.from(received[0]!.data, 'base64').toString('base64')).toBe(eventRecord!.payload);

    const states = emulator.registry.states(DEMO.registry, stateRecord!.deviceId);
    expect(states.map((s) => Buffer.from(s.binaryData, 'base64').toString('utf8'))).toEqual([stateRecord!.payload]);
  });

  it('logs no key material', () => {
    expect(run.output).not.toMatch(/PRIVATE KEY/);
    // A JWT is three base64url segments starting with the encoded `{"alg"` header.
    expect(run.output).not.toMatch(/eyJhbGci[\w-]*\.[\w-]+\.[\w-]+/);
  });
});
