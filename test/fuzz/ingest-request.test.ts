/**
 * Fuzzing HTTP ingestion: the body parsers (IoT Core's publishEvent and setState bodies, the batch body, raw
 * bodies with a subfolder), the Authorization header, and whole requests through `IngestService`.
 *
 * - The parsers return a reading or throw the project's RelayError with an input code; nothing else.
 * - A whole request, whatever its method, path, headers and body, gets an answer: never an exception, never a
 *   5xx (the queue here always takes what it is given), always IoT Core's error envelope on a refusal.
 * - What the ingest queues, the relay takes: every queued body parses under queue contract v1, for the device the
 *   request authenticated as.
 *
 * `FUZZ_RUNS=n` runs more cases; `FUZZ_SEED=n` replays a reported seed.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DeviceAuthenticator, deriveDeviceKey, masterKeyFromText, parseAuthorization } from '../../lib/auth/index.js';
import { isRelayError, type RelayErrorCode } from '../../lib/errors.js';
import { IngestService, type IngestResponse } from '../../lib/ingest/index.js';
import { batchItemsFrom, readingFromPublishEvent, readingFromRaw, readingFromSetState, type Reading } from '../../lib/ingest/readings.js';
import { parseQueueMessage } from '../../lib/queue/message.js';
import type { QueueRecord, RelayQueue } from '../../lib/queue/relay-queue.js';

const RUNS = Number(process.env.FUZZ_RUNS ?? 1_000);
const SEED = process.env.FUZZ_SEED === undefined ? 424_242 : Number(process.env.FUZZ_SEED);
const params = { numRuns: RUNS, seed: SEED };

const BODY_CODES: readonly RelayErrorCode[] = ['ERR_INVALID_MESSAGE', 'ERR_INVALID_FIELD', 'ERR_INVALID_SUBFOLDER', 'ERR_INVALID_BASE64', 'ERR_PAYLOAD_TOO_LARGE'];

function expectInputError(e: unknown, codes: readonly RelayErrorCode[]): void {
  expect(isRelayError(e), `not a RelayError: ${String(e)}`).toBe(true);
  if (isRelayError(e)) expect(codes).toContain(e.code);
}

function readingChecked(parse: () => Reading | Reading[]): void {
  try {
    parse();
  } catch (e) {
    expectInputError(e, BODY_CODES);
  }
}

const b64 = fc.oneof(fc.base64String(), fc.constantFrom('YWJjZA', '-_-_', 'e30= ', ''), fc.anything());
const sub = fc.oneof(fc.constantFrom('alarms', 'a/b', '', '#', 'a/+', 'a\u0000', '//'), fc.string({ maxLength: 40 }), fc.anything());
const publishEventBody = fc.record({ binary_data: b64, binaryData: b64, sub_folder: sub, subFolder: sub, gatewayInfo: fc.anything() }, { requiredKeys: [] });
const setStateBody = fc.record({ state: fc.oneof(fc.record({ binary_data: b64, binaryData: b64, x: fc.anything() }, { requiredKeys: [] }), fc.anything()) }, { requiredKeys: [] });
const batchBody = fc.record(
  {
    readings: fc.oneof(
      fc.array(
        fc.oneof(
          fc.record(
            {
              type: fc.oneof(fc.constantFrom('event', 'state', 'config-poll'), fc.anything()),
              subfolder: sub,
              payload: fc.oneof(fc.string(), fc.anything()),
              encoding: fc.oneof(fc.constantFrom('utf8', 'base64', 'hex'), fc.anything()),
              messageId: fc.oneof(fc.string({ maxLength: 130 }), fc.anything()),
              deviceId: fc.anything(),
            },
            { requiredKeys: [] },
          ),
          fc.anything(),
        ),
        { maxLength: 8 },
      ),
      fc.anything(),
    ),
    extra: fc.anything(),
  },
  { requiredKeys: [] },
);
const bytes = (arb: fc.Arbitrary<unknown>): fc.Arbitrary<Buffer> =>
  fc.oneof({ weight: 4, arbitrary: arb.map((o) => Buffer.from(JSON.stringify(o) ?? '')) }, { weight: 1, arbitrary: fc.uint8Array({ maxLength: 300 }).map((u) => Buffer.from(u)) });

describe('ingest body parsers under fuzzing', () => {
  it('publishEvent bodies', () => {
    fc.assert(fc.property(bytes(publishEventBody), (b) => readingChecked(() => readingFromPublishEvent(b))), params);
  });
  it('setState bodies', () => {
    fc.assert(fc.property(bytes(setStateBody), (b) => readingChecked(() => readingFromSetState(b))), params);
  });
  it('batch bodies: the request as a whole, and each reading on its own', () => {
    fc.assert(
      fc.property(bytes(batchBody), (b) => {
        try {
          for (const item of batchItemsFrom(b)) if ('error' in item) expectInputError(item.error, BODY_CODES);
        } catch (e) {
          expectInputError(e, BODY_CODES);
        }
      }),
      params,
    );
  });
  it('raw bodies with any subfolder from the path', () => {
    fc.assert(
      fc.property(fc.constantFrom('event' as const, 'state' as const), fc.uint8Array({ maxLength: 200 }), fc.option(fc.string({ unit: 'binary', maxLength: 60 }), { nil: undefined }), (type, payload, subfolder) =>
        readingChecked(() => readingFromRaw(type, Buffer.from(payload), type === 'event' ? subfolder : undefined)),
      ),
      params,
    );
  });
  it('Authorization headers', () => {
    const header = fc.oneof(
      fc.string({ unit: 'binary', maxLength: 120 }),
      fc.tuple(fc.constantFrom('Bearer', 'bearer', 'Device-Key', 'Basic', ''), fc.constantFrom(' ', '  ', '\t', ''), fc.string({ maxLength: 80 })).map(([s, sp, c]) => `${s}${sp}${c}`),
    );
    fc.assert(
      fc.property(header, (h) => {
        try {
          parseAuthorization(h);
        } catch (e) {
          expectInputError(e, ['ERR_AUTH_MISSING', 'ERR_AUTH_INVALID']);
        }
      }),
      params,
    );
  });
});

describe('whole ingest requests under fuzzing', () => {
  const MASTER = 'a fuzzing master secret of more than 32 bytes';
  const master = masterKeyFromText(MASTER, 'test');
  const queued: QueueRecord[] = [];
  const queue: RelayQueue = {
    send: async (records) => {
      queued.push(...records);
      return records.map((_, i) => ({ queued: true as const, messageId: `m-${queued.length}-${i}` }));
    },
  };
  const service = new IngestService({
    registry: { project: 'demo-project', location: 'us-central1', registry: 'demo-registry' },
    gatewayIds: ['gw-1', 'gw-2'],
    authenticator: new DeviceAuthenticator({ project: 'demo-project', masterSecret: { origin: 'test', read: async () => MASTER } }),
    queue,
  });

  const deviceId = fc.oneof(fc.constantFrom('dev-a', 'pump+1', 'dev%41', 'a~b.c_d'), fc.stringMatching(/^[a-zA-Z][-a-zA-Z0-9._+~%]{2,12}$/), fc.string({ maxLength: 20 }));
  const path = fc.oneof(
    fc.tuple(deviceId, fc.constantFrom('events', 'state', 'batch', 'events/alarms', 'events/a/+', 'events/', 'state/x', 'config')).map(([d, r]) => `/devices/${d}/${r}`),
    fc.tuple(fc.constantFrom('demo-project', 'other'), deviceId, fc.constantFrom(':publishEvent', ':setState', '%3ApublishEvent', ':delete', '')).map(
      ([p, d, v]) => `/v1/projects/${p}/locations/us-central1/registries/demo-registry/devices/${d}${v}`,
    ),
    fc.string({ maxLength: 60 }),
  );
  const request = fc.record({
    method: fc.oneof({ weight: 5, arbitrary: fc.constant('POST') }, { weight: 1, arbitrary: fc.constantFrom('GET', 'PUT', 'post', 'DELETE') }),
    path,
    /** Whether to present the path device's own key (most requests), a wrong one, or nothing. */
    credential: fc.constantFrom('own', 'own', 'own', 'other', 'none', 'garbage'),
    messageId: fc.option(fc.string({ maxLength: 140 }), { nil: undefined }),
    body: fc.oneof(bytes(publishEventBody), bytes(setStateBody), bytes(batchBody), fc.uint8Array({ maxLength: 200 }).map((u) => Buffer.from(u))),
  });

  it('every request gets a 2xx or 4xx answer in the error envelope; everything queued is relayable and the caller\'s', async () => {
    const statuses = new Set<number>();
    await fc.assert(
      fc.asyncProperty(request, async (r) => {
        const target = /\/devices\/([^/:%]+)/.exec(r.path)?.[1] ?? 'dev-a';
        const key = (() => {
          try {
            return deriveDeviceKey(master, r.credential === 'other' ? `${target}x` : target);
          } catch {
            return 'A'.repeat(43);
          }
        })();
        const headers: Record<string, string | undefined> = {};
        if (r.credential === 'own' || r.credential === 'other') headers.authorization = `Device-Key ${key}`;
        if (r.credential === 'garbage') headers.authorization = 'Device-Key ####';
        if (r.messageId !== undefined) headers['x-message-id'] = r.messageId;
        const before = queued.length;

        let answer: IngestResponse | undefined;
        await expect((async () => (answer = await service.handle({ method: r.method, path: r.path, headers, body: r.body, requestId: 'req-1' })))()).resolves.toBeDefined();
        const a = answer!;
        statuses.add(a.statusCode);
        expect(a.statusCode === 202 || (a.statusCode >= 400 && a.statusCode < 500), `${a.statusCode} for ${r.method} ${r.path}`).toBe(true);
        if (a.statusCode !== 202) {
          const error = (a.body as { error?: { code: number; status: string; message: string } }).error;
          expect(error?.code).toBe(a.statusCode);
          expect(typeof error?.message).toBe('string');
        }
        for (const record of queued.slice(before)) {
          const m = parseQueueMessage(record.body);
          expect(m.type).not.toBe('config-poll');
          if (m.type !== 'config-poll') expect(m.deviceId).toBe(a.log.deviceId);
        }
        if (a.statusCode !== 202 && !('readings' in a.body)) expect(queued.length).toBe(before);
      }),
      params,
    );
    // The generator gets past every stage: routing, authentication, body checks, and into the queue.
    expect([...statuses].sort()).toEqual(expect.arrayContaining([202, 400, 401, 404]));
  });
});
