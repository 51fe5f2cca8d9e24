/**
 * Fuzzing the queue contract v1 parser (`parseQueueMessage`), which every producer's body goes through. For any
 * input it either returns a message that is safe to relay, or throws the project's RelayError with one of the
 * input codes (each of which dead-letters the record); never another exception, never ERR_INTERNAL.
 *
 * "Safe to relay": the device ID and subfolder build a topic without error, the payload is within the bridge's
 * limit for its type, a device token has the JWT shape, and encoding the message again gives an equal message.
 *
 * `FUZZ_RUNS=n` runs more cases; `FUZZ_SEED=n` replays a reported seed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isRelayError, type RelayErrorCode } from '../../lib/errors.js';
import { eventsTopic, stateTopic } from '../../lib/iotcore/topics.js';
import { MAX_EVENT_BYTES, MAX_STATE_BYTES } from '../../lib/iotcore/limits.js';
import { encodeTelemetryMessage, parseQueueMessage, type QueueMessage } from '../../lib/queue/message.js';
import { dispositionOf } from '../../lib/relay/outcomes.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 2_000);
const SEED = process.env.FUZZ_SEED === undefined ? 424_242 : Number(process.env.FUZZ_SEED);
const params = { numRuns: RUNS, seed: SEED };

const INPUT_CODES: readonly RelayErrorCode[] = [
  'ERR_INVALID_MESSAGE',
  'ERR_INVALID_FIELD',
  'ERR_INVALID_DEVICE_ID',
  'ERR_DEVICE_ID_MQTT_WILDCARD',
  'ERR_INVALID_SUBFOLDER',
  'ERR_INVALID_BASE64',
  'ERR_PAYLOAD_TOO_LARGE',
  'ERR_UNSUPPORTED_VERSION',
  'ERR_UNKNOWN_TYPE',
];

/** Parses; checks what it returns or throws; returns the message or undefined. */
function parseChecked(body: string): QueueMessage | undefined {
  let message: QueueMessage;
  try {
    message = parseQueueMessage(body);
  } catch (e) {
    expect(isRelayError(e), `not a RelayError: ${String(e)}`).toBe(true);
    if (!isRelayError(e)) return undefined;
    expect(INPUT_CODES).toContain(e.code);
    expect(dispositionOf(e.code)).toBe('dead-letter');
    // Every refusal but an unreadable body names the field at fault (which may be the empty key "").
    if (e.code !== 'ERR_INVALID_MESSAGE') expect(typeof e.field, e.message).toBe('string');
    return undefined;
  }
  if (message.type === 'config-poll') {
    expect(message.deviceIds.length).toBeGreaterThan(0);
    for (const d of message.deviceIds) expect(() => stateTopic(d)).not.toThrow();
    return message;
  }
  expect(() => (message.type === 'event' ? eventsTopic(message.deviceId, message.subfolder) : stateTopic(message.deviceId))).not.toThrow();
  expect(message.payload.byteLength).toBeLessThanOrEqual(message.type === 'event' ? MAX_EVENT_BYTES : MAX_STATE_BYTES);
  if (message.deviceToken !== undefined) expect(message.deviceToken).toMatch(/^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$/);
  expect(parseQueueMessage(encodeTelemetryMessage(message))).toEqual(message);
  return message;
}

/** Values close to the contract's, and anything at all. */
const deviceIdLike = fc.oneof(
  fc.constantFrom('pump-0042', 'valve-01', 'a+b', 'dev%2F1', 'Z~._-', 'goog-pump', 'ab', 'pump/1', 'pump#', 'pump+', '1pump', 'p\u0000ump', 'pümp-1', ''),
  fc.stringMatching(/^[a-zA-Z][-a-zA-Z0-9._+~%]{2,20}$/),
  fc.string({ maxLength: 300 }),
  fc.anything(),
);
const subfolderLike = fc.oneof(
  fc.constantFrom('alarms', 'alarms/high', 'a//b', '/a', 'a/', '+', '#', 'a/+/b', 'a\u0000b', 'a\nb', '..', '../config', 's'.repeat(256), 's'.repeat(257)),
  fc.string({ maxLength: 300 }),
  fc.anything(),
);
const payloadLike = fc.oneof(fc.string(), fc.base64String(), fc.constantFrom('YWJjZA', 'YWJj ZA==', '-_-_', 'e30=\n', '===='), fc.anything());
const tokenLike = fc.oneof(fc.constantFrom('a.b.c', 'a.b.', 'a.b', 'eyJ.eyJ.sig', 'a.b.c"}'), fc.stringMatching(/^[A-Za-z0-9_.-]{0,60}$/), fc.anything());

/** Usually the valid value (or no field at all), now and then a wrong one. */
const mostly = <T>(valid: fc.Arbitrary<T>, wrong: fc.Arbitrary<unknown>): fc.Arbitrary<unknown> =>
  fc.oneof({ weight: 6, arbitrary: valid }, { weight: 1, arbitrary: wrong });
const absent = fc.constant(undefined);

const bodyObject = fc
  .record({
    v: mostly(fc.constant(1), fc.anything()),
    deviceId: mostly(fc.stringMatching(/^[a-zA-Z][-a-zA-Z0-9._+~%]{2,20}$/), deviceIdLike),
    type: mostly(fc.constantFrom(undefined, 'event', 'state'), fc.oneof(fc.constantFrom('config-poll', 'command', 'EVENT'), fc.anything())),
    subfolder: mostly(fc.constantFrom(undefined, 'alarms', 'a/b.c/d~e'), subfolderLike),
    payload: mostly(fc.oneof(fc.string(), fc.base64String()), payloadLike),
    encoding: mostly(fc.constantFrom(undefined, 'utf8'), fc.oneof(fc.constantFrom('base64', 'hex', 'UTF8'), fc.anything())),
    deviceToken: mostly(absent, tokenLike),
    deviceIds: mostly(absent, fc.oneof(fc.array(deviceIdLike, { maxLength: 5 }), fc.anything())),
    extra: mostly(absent, fc.anything()),
  })
  .map((o) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)));

describe('parseQueueMessage under fuzzing', () => {
  it('any text: a relayable message or an input RelayError', () => {
    fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 500 }), (s) => void parseChecked(s)), params);
  });

  it('any JSON value', () => {
    fc.assert(fc.property(fc.json({ maxDepth: 4 }), (s) => void parseChecked(s)), params);
  });

  it('objects shaped like the contract, with any field wrong in any way', () => {
    let accepted = 0;
    fc.assert(
      fc.property(bodyObject, (o) => {
        if (parseChecked(JSON.stringify(o)) !== undefined) accepted++;
      }),
      params,
    );
    // The generator reaches valid messages too, so the checks on what is returned do run.
    expect(accepted).toBeGreaterThan(0);
  });

  it('valid bodies with bytes flipped, inserted or cut', () => {
    const valid = fc.constantFrom(
      '{"v":1,"deviceId":"pump-0042","type":"event","subfolder":"alarms/high","payload":"eyJ0ZW1wIjogMjF9","encoding":"base64"}',
      '{"v":1,"deviceId":"pump-0042","type":"state","payload":"on"}',
      '{"v":1,"type":"config-poll","deviceIds":["valve-01","valve-02"]}',
      '{"v":1,"deviceId":"meter-01","payload":"x","deviceToken":"eyJhbGciOiJFUzI1NiJ9.eyJhdWQiOiJwIn0.c2ln"}',
    );
    fc.assert(
      fc.property(valid, fc.array(fc.tuple(fc.nat(), fc.string({ unit: 'binary', maxLength: 3 }), fc.nat({ max: 3 })), { maxLength: 4 }), (body, edits) => {
        let s = body;
        for (const [at, insert, cut] of edits) {
          const i = at % (s.length + 1);
          s = s.slice(0, i) + insert + s.slice(i + cut);
        }
        parseChecked(s);
      }),
      params,
    );
  });
});
