/**
 * TLS: the relay's gateway session talks only to a bridge whose certificate it can verify for the host it dialled,
 * over TLS 1.2 or later (docs/protocol.md §1.1). Each refusal must be clear (ERR_TLS naming the TLS error, so an
 * operator knows what to fix) and must happen before a single MQTT byte, the gateway JWT above all, leaves.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as createTlsServer, type Server as TlsServer } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator, type Emulator } from '../../emulator/index.js';
import { GatewaySession, type SessionReport } from '../../lib/gateway/session.js';
import { eventually, type Fleet } from '../helpers/emulator-fixtures.js';
import { eventBody, FAST, GW, makeRelayFleet, PUMPS, record, registryPath, runSession, type SessionRun } from '../helpers/relay-fixtures.js';
import { issueServerCertificate, makeCa, writeTlsFiles, type ServerCertificate, type TestCa } from './certificates.js';

let fleet: Fleet;
let dir: string;
let ca: TestCa;
const emulators: Emulator[] = [];
const emulatorLog: string[] = [];

beforeAll(async () => {
  fleet = await makeRelayFleet();
  dir = await mkdtemp(join(tmpdir(), 'tls-security-'));
  ca = await makeCa('bridge test CA');
});
afterAll(async () => {
  for (const e of emulators) await e.close();
  await rm(dir, { recursive: true, force: true });
});

/** An emulator serving `leaf` (or its own generated certificate), logging to `emulatorLog`. */
async function emulatorServing(name: string, leaf?: ServerCertificate): Promise<Emulator> {
  const tlsFiles = leaf === undefined ? undefined : await writeTlsFiles(dir, name, ca, leaf);
  const emulator = await startEmulator({
    registry: fleet.document,
    adminPort: null,
    ...(tlsFiles === undefined ? {} : { tlsFiles }),
    log: (line) => emulatorLog.push(`${name}: ${line}`),
  });
  emulators.push(emulator);
  return emulator;
}

const lastHeartbeat = (emulator: Emulator): string | undefined => emulator.registry.findDevice(fleet.registryId, GW.assoc)?.lastHeartbeatTime;

/** Runs a session that must be refused at TLS; checks that no MQTT session reached the bridge. */
async function refusedRun(emulator: Emulator, extraCaPem: string | undefined): Promise<SessionRun> {
  const heartbeatBefore = lastHeartbeat(emulator);
  const run = await runSession(emulator, fleet, GW.assoc, [record(eventBody(PUMPS[0]!))], { options: { extraCaPem } });
  expect(run.report.failure?.code).toBe('ERR_TLS');
  expect(run.report.failure?.phase).toBe('connecting');
  expect(run.report.phases).toEqual(['connecting', 'closed']);
  expect(run.outcomes.map((o) => [o.outcome, o.code])).toEqual([['retry-backoff', 'ERR_TLS']]);
  // The bridge never saw a CONNECT: no session, no heartbeat, the handshake failure is all it logged.
  expect(lastHeartbeat(emulator)).toBe(heartbeatBefore);
  expect(emulator.connections()).toEqual([]);
  return run;
}

describe('the bridge certificate', () => {
  it('is refused when it chains to a CA the relay does not trust', async () => {
    const emulator = await emulatorServing('own-ca');
    const stranger = await makeCa('a stranger CA');
    const run = await refusedRun(emulator, stranger.certPem);
    expect(run.report.failure?.reason).toMatch(/^TLS with 127\.0\.0\.1:\d+ failed: (SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY); check IOTCORE_CA_FILE \(.*\) and IOTCORE_MQTT_HOST$/);
    // The bridge's side of it: the relay aborted the handshake.
    await eventually(() => emulatorLog.some((l) => l.startsWith('own-ca: TLS handshake failed')), 1_000, 'the emulator saw no failed handshake');
    expect(emulatorLog.filter((l) => l.startsWith('own-ca:'))).toEqual([expect.stringMatching(/^own-ca: TLS handshake failed: /)]);
  });

  it('is refused with the system roots alone: trusting the bridge takes its CA, explicitly', async () => {
    const emulator = await emulatorServing('system-roots');
    const run = await refusedRun(emulator, undefined);
    expect(run.report.failure?.reason).toMatch(/failed: (SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY); check IOTCORE_CA_FILE/);
  });

  it('is refused when issued for another host name, though its CA is trusted', async () => {
    const emulator = await emulatorServing('wrong-host', await issueServerCertificate(ca, { dns: ['us-central1-mqtt.example.invalid'] }));
    const run = await refusedRun(emulator, ca.certPem);
    expect(run.report.failure?.reason).toMatch(/failed: ERR_TLS_CERT_ALTNAME_INVALID; check IOTCORE_MQTT_HOST: the bridge's certificate does not carry that name$/);
  });

  it('is refused once expired, though its CA is trusted and the name is right', async () => {
    const expired = await issueServerCertificate(ca, { ip: ['127.0.0.1'], notBefore: new Date(Date.now() - 48 * 3600_000), notAfter: new Date(Date.now() - 3600_000) });
    const emulator = await emulatorServing('expired', expired);
    const run = await refusedRun(emulator, ca.certPem);
    expect(run.report.failure?.reason).toMatch(/failed: CERT_HAS_EXPIRED; check IOTCORE_CA_FILE/);
  });

  it('is accepted when valid for 127.0.0.1 and chained to the trusted CA (the refusals above are about the certificate alone)', async () => {
    const emulator = await emulatorServing('valid', await issueServerCertificate(ca, { ip: ['127.0.0.1'] }));
    const run = await runSession(emulator, fleet, GW.assoc, [record(eventBody(PUMPS[1]!))], { options: { extraCaPem: ca.certPem } });
    expect(run.report.failure).toBeUndefined();
    expect(run.outcomes.map((o) => o.outcome)).toEqual(['confirmed']);
  });
});

describe('the TLS version', () => {
  let server: TlsServer;
  let port: number;
  /** Application bytes the TLS 1.1 server received from any client. */
  let received = 0;
  const serverErrors: string[] = [];

  beforeAll(async () => {
    const leaf = await issueServerCertificate(ca, { ip: ['127.0.0.1'] });
    // OpenSSL 3 allows TLS 1.0/1.1 only at security level 0 (their signature algorithms use SHA-1 and MD5).
    server = createTlsServer({ cert: leaf.certPem, key: leaf.keyPem, minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }, (socket) => {
      socket.on('data', (chunk: Buffer) => (received += chunk.length));
      socket.on('error', () => {});
    });
    server.on('tlsClientError', (e: NodeJS.ErrnoException) => serverErrors.push(e.code ?? e.message));
    port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as AddressInfo).port)));
  });
  afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

  it('the test server really speaks TLS 1.1, and only that', async () => {
    const negotiated = await new Promise<string | null>((resolve, reject) => {
      const socket = tlsConnect({ host: '127.0.0.1', port, ca: ca.certPem, minVersion: 'TLSv1', ciphers: 'DEFAULT@SECLEVEL=0' }, () => {
        resolve(socket.getProtocol());
        socket.destroy();
      });
      socket.on('error', reject);
    });
    expect(negotiated).toBe('TLSv1.1');
  });

  it('a bridge that offers only TLS 1.1 is refused, gets not one byte of MQTT (no JWT), and nothing is confirmed', async () => {
    const received0 = received;
    const session = new GatewaySession({
      ...FAST,
      registry: registryPath(fleet),
      gatewayId: GW.assoc,
      host: '127.0.0.1',
      port,
      extraCaPem: ca.certPem,
      jwt: await fleet.jwt(GW.assoc),
      deadline: Date.now() + 5_000,
    });
    const report: SessionReport = await session.run(async (s) => {
      await s.attach([{ deviceId: PUMPS[2]! }]);
      await s.publish([{ key: 'm-1', deviceId: PUMPS[2]!, kind: 'event', payload: Buffer.from('x') }]);
    });
    expect(report.failure).toMatchObject({ phase: 'connecting' });
    // A TLS failure, said as one (backed off, not retried at once as a lost connection would be).
    expect(report.failure?.code).toBe('ERR_TLS');
    expect(report.failure?.reason).toMatch(/protocol version/i);
    expect(report.phases).toEqual(['connecting', 'closed']);
    expect(report.records.size).toBe(0);
    // The server's side: the relay's ClientHello asked for TLS 1.2 or later, which this server cannot give.
    expect(serverErrors.at(-1)).toBe('ERR_SSL_UNSUPPORTED_PROTOCOL');
    expect(received).toBe(received0);
  });
});
