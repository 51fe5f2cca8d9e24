/**
 * The transport: TLS 1.2 or later with a certificate for localhost and 127.0.0.1 signed by a CA made at start,
 * or certificate files given by the caller, or plain TCP on request.
 */
import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { connect } from 'node:tls';
import type { ConnectionOptions, TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startEmulator } from '../../emulator/index.js';
import type { Emulator } from '../../emulator/index.js';
import { generateTlsMaterial } from '../../emulator/tls.js';
import { connackCode, makeFleet } from '../helpers/emulator-fixtures.js';
import type { Fleet } from '../helpers/emulator-fixtures.js';

let fleet: Fleet;
let emulator: Emulator;

beforeAll(async () => {
  fleet = await makeFleet({ devices: ['dev-tls'] });
  emulator = await startEmulator({ registry: fleet.document, adminPort: null });
});
afterAll(() => emulator.close());

function handshake(options: ConnectionOptions): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect(options, () => resolve(socket));
    socket.once('error', reject);
  });
}

describe('generated certificates', () => {
  it('serves a certificate for 127.0.0.1 and localhost that the written CA verifies', async () => {
    expect(emulator.mqttUrl).toBe(`mqtts://127.0.0.1:${emulator.port}`);
    expect(await readFile(emulator.caFile!, 'utf8')).toBe(emulator.ca);
    for (const servername of [undefined, 'localhost']) {
      const socket = await handshake({ host: '127.0.0.1', port: emulator.port, ca: emulator.ca, ...(servername ? { servername } : {}) });
      expect(socket.authorized).toBe(true);
      expect(['TLSv1.2', 'TLSv1.3']).toContain(socket.getProtocol());
      socket.destroy();
    }
    const cert = new X509Certificate((await generateTlsMaterial()).certPem);
    expect(cert.subjectAltName).toContain('DNS:localhost');
    expect(cert.subjectAltName).toContain('IP Address:127.0.0.1');
  });

  it('is not trusted without the CA: verification stays on', async () => {
    await expect(handshake({ host: '127.0.0.1', port: emulator.port })).rejects.toThrow(/certificate/i);
  });

  it('refuses TLS 1.1 with a protocol_version alert and accepts TLS 1.2', async () => {
    // SECLEVEL=0 lets this client offer TLS 1.1 at all, so the refusal seen is the server's.
    const old = handshake({ host: '127.0.0.1', port: emulator.port, ca: emulator.ca, minVersion: 'TLSv1.1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' });
    await expect(old).rejects.toMatchObject({ code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
    const tls12 = await handshake({ host: '127.0.0.1', port: emulator.port, ca: emulator.ca, maxVersion: 'TLSv1.2' });
    expect(tls12.getProtocol()).toBe('TLSv1.2');
    tls12.destroy();
  });

  it('writes the CA into dataDir when given, and removes its own temporary folder on close', async () => {
    const dataDir = await mkdtemp(join(tmpdir(), 'emulator-data-'));
    try {
      const withDir = await startEmulator({ registry: fleet.document, adminPort: null, dataDir });
      expect(withDir.caFile).toBe(join(dataDir, 'ca.pem'));
      await withDir.close();
      expect(existsSync(join(dataDir, 'ca.pem'))).toBe(true);
    } finally {
      await rm(dataDir, { recursive: true, force: true });
    }
    const owned = await startEmulator({ registry: fleet.document, adminPort: null });
    const ownedDir = dirname(owned.caFile!);
    await owned.close();
    expect(existsSync(ownedDir)).toBe(false);
  });
});

it('serves certificate files when given', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'emulator-certs-'));
  try {
    const material = await generateTlsMaterial();
    const files = { cert: join(dir, 'server.pem'), key: join(dir, 'server.key'), ca: join(dir, 'ca.pem') };
    await writeFile(files.cert, material.certPem);
    await writeFile(files.key, material.keyPem);
    await writeFile(files.ca, material.caPem!);
    const e = await startEmulator({ registry: fleet.document, adminPort: null, tlsFiles: files });
    try {
      expect(e.caFile).toBe(files.ca);
      expect(e.ca).toBe(material.caPem);
      expect(await connackCode(e, fleet, 'dev-tls')).toBe(0);
      // The emulator's usual CA does not verify this server: it really serves the given files.
      await expect(handshake({ host: '127.0.0.1', port: e.port, ca: emulator.ca })).rejects.toThrow(/certificate/i);
    } finally {
      await e.close();
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

it('speaks plain MQTT over TCP with tls: false', async () => {
  const e = await startEmulator({ registry: fleet.document, adminPort: null, tls: false });
  try {
    expect(e.mqttUrl).toBe(`mqtt://127.0.0.1:${e.port}`);
    expect(e.ca).toBeUndefined();
    expect(e.caFile).toBeUndefined();
    expect(await connackCode(e, fleet, 'dev-tls')).toBe(0);
  } finally {
    await e.close();
  }
});
