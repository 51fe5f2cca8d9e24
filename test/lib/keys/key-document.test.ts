import { beforeAll, describe, expect, it } from 'vitest';
import type { RelayError } from '../../../lib/errors.js';
import { keyEntryFor } from '../../../lib/keys/key-document.js';
import { ecPems, expectNoKeyMaterial, type EcPems } from './pem-factory.js';
import { thrownRelayError } from '../../helpers/relay-error.js';

const origin = 'secret gw-keys';
let ec: EcPems;
let other: EcPems;

beforeAll(async () => {
  [ec, other] = await Promise.all([ecPems(), ecPems()]);
});

function refusal(document: string, gatewayId = 'gw-1'): RelayError {
  const e = thrownRelayError(() => keyEntryFor(document, gatewayId, origin), 'ERR_KEY_INVALID');
  expect(e.message).toContain(origin);
  expectNoKeyMaterial(e, ec.pkcs8, other.pkcs8);
  return e;
}

describe('keyEntryFor', () => {
  it('uses a bare PEM for every gateway', () => {
    for (const gw of ['gw-1', 'gw-2']) {
      expect(keyEntryFor(`\n${ec.pkcs8}\n`, gw, origin)).toEqual({ pem: ec.pkcs8.trim(), algorithm: undefined, origin });
    }
  });

  it('uses a single {privateKey, algorithm} object for every gateway', () => {
    const doc = JSON.stringify({ privateKey: ec.pkcs8, algorithm: 'ES256' });
    expect(keyEntryFor(doc, 'gw-7', origin)).toEqual({ pem: ec.pkcs8, algorithm: 'ES256', origin });
  });

  it('looks a gateway up in a map of objects and bare PEM strings', () => {
    const doc = JSON.stringify({ 'gw-1': { privateKey: ec.pkcs8, algorithm: 'ES256' }, 'gw-2': other.sec1 });
    expect(keyEntryFor(doc, 'gw-1', origin)).toEqual({ pem: ec.pkcs8, algorithm: 'ES256', origin: `${origin}, entry gw-1` });
    expect(keyEntryFor(doc, 'gw-2', origin)).toEqual({ pem: other.sec1, algorithm: undefined, origin: `${origin}, entry gw-2` });
  });

  it('treats a gateway named "privateKey" as a map entry when its value is an object', () => {
    const doc = JSON.stringify({ privateKey: { privateKey: other.pkcs8 }, 'gw-1': ec.pkcs8 });
    expect(keyEntryFor(doc, 'privateKey', origin).pem).toBe(other.pkcs8);
    expect(keyEntryFor(doc, 'gw-1', origin).pem).toBe(ec.pkcs8);
  });

  it('does not find inherited properties as gateways ("constructor" is a valid gateway ID)', () => {
    const e = refusal(JSON.stringify({ 'gw-1': ec.pkcs8 }), 'constructor');
    expect(e.message).toContain('no key for gateway constructor');
  });

  it('names the gateway and the entries present when a map has no entry for it, and no key', () => {
    const e = refusal(JSON.stringify({ 'gw-1': ec.pkcs8, 'gw-2': { privateKey: other.pkcs8 } }), 'gw-9');
    expect(e.message).toBe(`${origin}: no key for gateway gw-9 (the document has entries for gw-1, gw-2)`);
  });

  it('lists at most ten gateway IDs', () => {
    const doc = JSON.stringify(Object.fromEntries(Array.from({ length: 12 }, (_, i) => [`gw-${i}`, 'x'])));
    const e = refusal(doc, 'gw-99');
    expect(e.message).toContain('gw-9, ...');
    expect(e.message).not.toContain('gw-10');
  });

  it('refuses a map entry of the wrong shape', () => {
    const e = refusal(JSON.stringify({ 'gw-1': { key: ec.pkcs8 } }));
    expect(e.message).toContain(`${origin}, entry gw-1: must be a PEM string or an object`);
  });

  it('refuses broken JSON without quoting it (the text around a JSON fault is key material)', () => {
    const broken = `{"privateKey": "${ec.pkcs8}"`; // raw line breaks inside a JSON string, and no closing brace
    const e = refusal(broken);
    expect(e.message).toBe(`${origin}: the key document is not valid JSON`);
    expect(e.cause).toBeUndefined();
  });

  it('refuses JSON that is not an object, and text that is neither PEM nor JSON', () => {
    expect(refusal('{}').message).toContain('no key for gateway gw-1 (the document has no entries)');
    expect(refusal('["a"]').message).toContain('neither a PEM private key nor a JSON key document');
    expect(refusal('MIGHAgEAMBMGByqGSM49AgEGCCqGSM49').message).toContain('neither a PEM');
  });
});
