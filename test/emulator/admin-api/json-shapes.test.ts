/** The admin API's request bodies, field by field, and its list responses. */
import { describe, expect, it } from 'vitest';
import { MAX_COMMAND_BYTES } from '../../../lib/iotcore/limits.js';
import { bindingRequest, commandRequest, configRequest, faultsRequest, health, int64, listPage, newDevice } from '../../../emulator/admin-api/json-shapes.js';
import { Registry } from '../../../emulator/registry.js';

const badArg = (message: RegExp) => expect.objectContaining({ status: 'INVALID_ARGUMENT', message: expect.stringMatching(message) });
const b64 = (s: string) => Buffer.from(s).toString('base64');

describe('newDevice', () => {
  it('takes the ID from the body and leaves the name to the server', () => {
    expect(newDevice({ id: 'pump-1', blocked: true })).toMatchObject({ id: 'pump-1', blocked: true });
    expect(newDevice({ id: 'pump-1', name: '' })).toMatchObject({ id: 'pump-1' });
    expect(() => newDevice({ id: 'pump-1', name: 'projects/p/locations/l/registries/r/devices/pump-1' })).toThrow(badArg(/device.name must be empty/));
    expect(() => newDevice({})).toThrow(badArg(/device.id is required/));
  });
});

describe('configRequest', () => {
  it('reads the config as base64 in either alphabet, and the version to replace as canonical int64', () => {
    expect(configRequest({ binaryData: '-_8', versionToUpdate: '007' })).toEqual({ binaryData: '+/8=', versionToUpdate: '7' });
    expect(configRequest({ binaryData: '' })).toEqual({ binaryData: '', versionToUpdate: '0' });
    expect(() => configRequest({})).toThrow(badArg(/binaryData is required/));
  });
});

describe('commandRequest', () => {
  it('reads the payload and a subfolder; an empty subfolder is none', () => {
    expect(commandRequest({ binaryData: b64('reboot'), subfolder: 'ops/now' })).toEqual({ payload: Buffer.from('reboot'), subfolder: 'ops/now' });
    expect(commandRequest({ binaryData: b64('x'), subfolder: '' })).toEqual({ payload: Buffer.from('x'), subfolder: undefined });
  });

  it('refuses no payload, an oversized one, and a subfolder that would change the topic', () => {
    expect(() => commandRequest({ subfolder: 'a' })).toThrow(badArg(/binaryData is required/));
    expect(() => commandRequest({ binaryData: Buffer.alloc(MAX_COMMAND_BYTES + 1).toString('base64') })).toThrow(badArg(/larger than/));
    expect(commandRequest({ binaryData: Buffer.alloc(MAX_COMMAND_BYTES).toString('base64') }).payload).toHaveLength(MAX_COMMAND_BYTES);
    for (const subfolder of ['a/#', 'a//b', '+']) expect(() => commandRequest({ binaryData: '', subfolder }), subfolder).toThrow(badArg(/^subfolder /));
  });
});

describe('bindingRequest', () => {
  it('needs both IDs', () => {
    expect(bindingRequest({ gatewayId: 'gw-1', deviceId: 'd-1' })).toEqual({ gatewayId: 'gw-1', deviceId: 'd-1' });
    expect(() => bindingRequest({ gatewayId: 'gw-1' })).toThrow(badArg(/deviceId/));
  });
});

describe('faultsRequest', () => {
  it('takes the faults it names, in either spelling, and turns null into each fault\'s off value', () => {
    expect(faultsRequest({ latency_ms: 5, closeAtPhase: 'attach', closeAtPhaseOnce: true })).toEqual({ latencyMs: 5, closeAtPhase: 'attach', closeAtPhaseOnce: true });
    expect(faultsRequest({ latencyMs: null, withholdPuback: null, dropPublish: null })).toEqual({ latencyMs: 0, withholdPuback: [], dropPublish: [] });
    expect(faultsRequest({ refuseConnect: null, closeAfterPackets: null })).toEqual({ refuseConnect: undefined, closeAfterPackets: undefined });
    // Clearing closeAtPhase clears its fire-once too.
    expect(faultsRequest({ closeAtPhase: null })).toEqual({ closeAtPhase: undefined, closeAtPhaseOnce: undefined });
    expect(faultsRequest({})).toEqual({});
  });

  it('refuses what checkFaults refuses, and what is no fault, as INVALID_ARGUMENT', () => {
    expect(() => faultsRequest({ refuseConnect: 0 })).toThrow(badArg(/refuseConnect must be a CONNACK refusal code/));
    expect(() => faultsRequest({ kick: 'gw-1' })).toThrow(badArg(/unknown fault "kick"/));
    expect(() => faultsRequest('latencyMs=5')).toThrow(badArg(/must be a JSON object of faults/));
  });
});

describe('int64', () => {
  it('takes a safe JSON number or a decimal string, and answers in canonical decimal', () => {
    expect(int64(undefined, 'v')).toBe('0');
    expect(int64(42, 'v')).toBe('42');
    expect(int64('9223372036854775807', 'v')).toBe('9223372036854775807');
  });

  it('refuses fractions, unsafe numbers, words, negatives and values past 2^63-1', () => {
    for (const value of [1.5, 2 ** 60, 'ten', '-1', '9223372036854775808', null]) expect(() => int64(value, 'v'), String(value)).toThrow(badArg(/^v must be/));
  });
});

describe('list responses', () => {
  it('put the items under their field, and a nextPageToken only when there is one', () => {
    expect(listPage('devices', { page: [1, 2] })).toEqual({ devices: [1, 2] });
    expect(Object.keys(listPage('devices', { page: [], nextPageToken: 'tok' }))).toEqual(['devices', 'nextPageToken']);
  });

  it('health names the project, location and registries', () => {
    const registry = new Registry('proj', 'loc');
    registry.createRegistry({ id: 'reg-1' });
    expect(health(registry)).toEqual({ status: 'ok', project: 'proj', location: 'loc', registries: ['reg-1'] });
  });
});
