/**
 * The JSON Schema of queue contract v1 and the relay's parser must agree: producers validate with the schema, the
 * relay decides with the parser. Every body here is checked by both.
 */
import { readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseQueueMessage } from '../../../lib/queue/message.js';

const schema: unknown = JSON.parse(readFileSync(new URL('../../../schema/queue-message-v1.schema.json', import.meta.url), 'utf8'));
// strict: an unknown keyword or a type-less constraint in the schema fails compilation instead of being ignored.
const validate = new Ajv2020({ strict: true, allErrors: true }).compile(schema as object);

const parses = (body: unknown): boolean => {
  try {
    parseQueueMessage(JSON.stringify(body));
    return true;
  } catch {
    return false;
  }
};
const token = 'eyJhbGciOiJFUzI1NiIsInR5cCI6IkpXVCJ9.eyJhdWQiOiJkZW1vIn0.c2ln';
const ids = (n: number): string[] => Array.from({ length: n }, (_, i) => `dev-${i}`);

const VALID: Record<string, unknown> = {
  'minimal event': { v: 1, deviceId: 'pump-0042', payload: '21.5' },
  'event with everything': { v: 1, deviceId: 'pump-0042', type: 'event', subfolder: 'alarms/high', payload: 'eyJ0ZW1wIjogMjF9', encoding: 'base64', deviceToken: token },
  'state in utf8': { v: 1, deviceId: 'pump-0042', type: 'state', payload: 'on', encoding: 'utf8' },
  'empty payload': { v: 1, deviceId: 'abc', payload: '' },
  'null type and encoding read as absent': { v: 1, deviceId: 'abc', payload: 'x', type: null, encoding: null },
  'device ID with every allowed character': { v: 1, deviceId: 'a-._~%9', payload: 'x' },
  'config-poll': { v: 1, type: 'config-poll', deviceIds: ['pump-0042', 'pump-0042', 'valve-1'] },
  'config-poll of 1000 devices': { v: 1, type: 'config-poll', deviceIds: ids(1000) },
  '256-character subfolder': { v: 1, deviceId: 'abc', payload: 'x', subfolder: 's'.repeat(256) },
};

const INVALID: Record<string, unknown> = {
  'not an object': [1, 2],
  'no version': { deviceId: 'pump-0042', payload: 'x' },
  'version 2': { v: 2, deviceId: 'pump-0042', payload: 'x' },
  'version as text': { v: '1', deviceId: 'pump-0042', payload: 'x' },
  'unknown field': { v: 1, deviceId: 'pump-0042', payload: 'x', priority: 'high' },
  'unknown type': { v: 1, deviceId: 'pump-0042', payload: 'x', type: 'command' },
  'no device ID': { v: 1, payload: 'x' },
  'device ID too short': { v: 1, deviceId: 'ab', payload: 'x' },
  'device ID with goog prefix': { v: 1, deviceId: 'google-1', payload: 'x' },
  'device ID with a slash': { v: 1, deviceId: 'a/b/c', payload: 'x' },
  'device ID with a + (IoT Core allows it, MQTT topics do not)': { v: 1, deviceId: 'pump+x', payload: 'x' },
  'device ID of 256 characters': { v: 1, deviceId: `a${'b'.repeat(255)}`, payload: 'x' },
  'no payload': { v: 1, deviceId: 'pump-0042' },
  'payload not a string': { v: 1, deviceId: 'pump-0042', payload: { t: 1 } },
  'unknown encoding': { v: 1, deviceId: 'pump-0042', payload: '6869', encoding: 'hex' },
  'base64 without padding': { v: 1, deviceId: 'pump-0042', payload: 'aGk', encoding: 'base64' },
  'base64url alphabet': { v: 1, deviceId: 'pump-0042', payload: 'a-_=', encoding: 'base64' },
  'subfolder on state': { v: 1, deviceId: 'pump-0042', type: 'state', payload: 'x', subfolder: 'a' },
  'empty subfolder': { v: 1, deviceId: 'pump-0042', payload: 'x', subfolder: '' },
  'subfolder with a wildcard': { v: 1, deviceId: 'pump-0042', payload: 'x', subfolder: 'a/+/b' },
  'subfolder with an empty level': { v: 1, deviceId: 'pump-0042', payload: 'x', subfolder: 'a//b' },
  'subfolder with a leading slash': { v: 1, deviceId: 'pump-0042', payload: 'x', subfolder: '/a' },
  'subfolder with NUL': { v: 1, deviceId: 'pump-0042', payload: 'x', subfolder: 'a\u0000b' },
  'subfolder of 257 characters': { v: 1, deviceId: 'pump-0042', payload: 'x', subfolder: 's'.repeat(257) },
  'null subfolder': { v: 1, deviceId: 'pump-0042', payload: 'x', subfolder: null },
  'device token not a JWT': { v: 1, deviceId: 'pump-0042', payload: 'x', deviceToken: 'Bearer abc' },
  'device token too long': { v: 1, deviceId: 'pump-0042', payload: 'x', deviceToken: `a.${'b'.repeat(8190)}.c` },
  'deviceIds on a record': { v: 1, deviceId: 'pump-0042', payload: 'x', deviceIds: ['pump-0042'] },
  'config-poll without devices': { v: 1, type: 'config-poll', deviceIds: [] },
  'config-poll with a bad device ID': { v: 1, type: 'config-poll', deviceIds: ['pump-0042', 'x'] },
  'config-poll with a device ID holding a +': { v: 1, type: 'config-poll', deviceIds: ['pump-0042', 'pump+x'] },
  'config-poll of 1001 devices': { v: 1, type: 'config-poll', deviceIds: ids(1001) },
  'config-poll with a payload': { v: 1, type: 'config-poll', deviceIds: ['pump-0042'], payload: 'x' },
  'config-poll with a device ID': { v: 1, type: 'config-poll', deviceIds: ['pump-0042'], deviceId: 'pump-0042' },
  'event payload over 256 KB (base64)': { v: 1, deviceId: 'pump-0042', payload: Buffer.alloc(262_147).toString('base64'), encoding: 'base64' },
  'state payload over 64 KB (text)': { v: 1, deviceId: 'pump-0042', type: 'state', payload: 'x'.repeat(65_537) },
};

describe('schema/queue-message-v1.schema.json', () => {
  it.each(Object.entries(VALID))('accepts, as the parser does: %s', (_, body) => {
    expect(validate(body), JSON.stringify(validate.errors)).toBe(true);
    expect(parses(body)).toBe(true);
  });

  it.each(Object.entries(INVALID))('refuses, as the parser does: %s', (_, body) => {
    expect(validate(body)).toBe(false);
    expect(parses(body)).toBe(false);
  });

  it('bounds payload sizes by length only: just over the limit in bytes, the schema lets through what the parser refuses', () => {
    // 262145 bytes take as many base64 characters as 262144; 65537 characters of 'é' are 131074 UTF-8 bytes.
    const overByOne = { v: 1, deviceId: 'pump-0042', payload: Buffer.alloc(262_145).toString('base64'), encoding: 'base64' };
    const multiByte = { v: 1, deviceId: 'pump-0042', type: 'state', payload: 'é'.repeat(65_536) };

    for (const body of [overByOne, multiByte]) {
      expect(validate(body)).toBe(true);
      expect(parses(body)).toBe(false);
    }
  });

  it('agrees with the parser on bodies built from every mix of good and bad field values', () => {
    const maybe = <T>(...values: T[]) => fc.option(fc.constantFrom(...values), { nil: undefined });
    const body = fc.record(
      {
        v: maybe<unknown>(1, 2, '1', null),
        type: maybe<unknown>('event', 'state', 'config-poll', 'command', null, 3),
        deviceId: maybe<unknown>('pump-0042', 'ab', 'goog-1', 'a/b', 'pump+x', 7, null),
        subfolder: maybe<unknown>('alarms/high', '', 'a//b', 'a/#', 'x'.repeat(257), null),
        payload: maybe<unknown>('hi', 'aGk=', 'aGk', '', 5),
        encoding: maybe<unknown>('utf8', 'base64', 'hex', null),
        deviceToken: maybe<unknown>(token, 'abc', '', null),
        deviceIds: maybe<unknown>(['pump-0042'], [], ['ab'], ['pump-0042', 'pump-0042'], 'pump-0042', null),
        other: maybe<unknown>(1),
      },
      { requiredKeys: [] },
    );
    fc.assert(
      fc.property(body, (b) => {
        const doc = Object.fromEntries(Object.entries(b).filter(([, v]) => v !== undefined));
        expect(validate(doc), JSON.stringify(doc)).toBe(parses(doc));
      }),
      { numRuns: 2000 },
    );
  });
});
