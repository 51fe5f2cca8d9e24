import { describe, expect, it } from 'vitest';
import { batchItemsFrom, MAX_BATCH_READINGS, readingFromPublishEvent, readingFromRaw, readingFromSetState } from '../../../lib/ingest/readings.js';

const json = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const b64 = (s: string | Buffer): string => Buffer.from(s).toString('base64');

describe('IoT Core HTTP bridge bodies', () => {
  it('reads publishEvent in both spellings, with and without a subfolder', () => {
    expect(readingFromPublishEvent(json({ binary_data: b64('hi'), sub_folder: 'alarms/high' }))).toEqual({ type: 'event', payload: Buffer.from('hi'), subfolder: 'alarms/high' });
    expect(readingFromPublishEvent(json({ binaryData: b64('hi'), subFolder: 'x' }))).toEqual({ type: 'event', payload: Buffer.from('hi'), subfolder: 'x' });
    expect(readingFromPublishEvent(json({ binary_data: b64('hi'), sub_folder: '' }))).toEqual({ type: 'event', payload: Buffer.from('hi') });
  });

  it('reads setState in both spellings', () => {
    expect(readingFromSetState(json({ state: { binary_data: b64('on') } }))).toEqual({ type: 'state', payload: Buffer.from('on') });
    expect(readingFromSetState(json({ state: { binaryData: b64('off') } }))).toEqual({ type: 'state', payload: Buffer.from('off') });
  });

  it('names the field and the reason of every refusal', () => {
    const cases: [() => unknown, string, string][] = [
      [() => readingFromPublishEvent(Buffer.from('{not json')), 'ERR_INVALID_MESSAGE', 'the body is not JSON'],
      [() => readingFromPublishEvent(json([1])), 'ERR_INVALID_MESSAGE', 'the body must be a JSON object'],
      [() => readingFromPublishEvent(json({})), 'ERR_INVALID_FIELD', 'binary_data is required (base64 of the payload)'],
      [() => readingFromPublishEvent(json({ binary_data: 'aGk', sub_folder: 'a' })), 'ERR_INVALID_BASE64', 'binary_data is not valid base64 (standard alphabet, with padding)'],
      [() => readingFromPublishEvent(json({ binaryData: 'aGk=', binary_data: 'aGk=' })), 'ERR_INVALID_FIELD', 'binary_data and binaryData are the same field; give one'],
      [() => readingFromPublishEvent(json({ binary_data: 'aGk=', sub_folder: 'a/#' })), 'ERR_INVALID_SUBFOLDER', 'sub_folder must not contain the MQTT wildcards + or #'],
      [() => readingFromPublishEvent(json({ binary_data: 'aGk=', gatewayInfo: {} })), 'ERR_INVALID_FIELD', 'gatewayInfo is not a known field (expected binary_data, binaryData, sub_folder, subFolder)'],
      [() => readingFromPublishEvent(json({ binary_data: 42 })), 'ERR_INVALID_FIELD', 'binary_data must be a string'],
      [() => readingFromSetState(json({ binary_data: 'aGk=' })), 'ERR_INVALID_FIELD', 'binary_data is not a known field (expected state)'],
      [() => readingFromSetState(json({ state: 'aGk=' })), 'ERR_INVALID_FIELD', 'state must be an object {"binary_data": "<base64>"}'],
      [() => readingFromSetState(json({ state: { binary_data: 'a!==' } })), 'ERR_INVALID_BASE64', 'state.binary_data is not valid base64 (standard alphabet, with padding)'],
      [() => readingFromSetState(json({ state: { sub_folder: 'a' } })), 'ERR_INVALID_FIELD', 'state.sub_folder is not a known field (expected binary_data, binaryData)'],
    ];
    for (const [read, code, message] of cases) expect(read).toThrow(expect.objectContaining({ code, message }));
  });

  it('holds events to 256 KB and state to 64 KB of decoded payload', () => {
    const event = Buffer.alloc(256 * 1024, 1);
    const state = Buffer.alloc(64 * 1024, 1);

    expect(readingFromPublishEvent(json({ binary_data: b64(event) })).payload).toHaveLength(event.length);
    expect(readingFromSetState(json({ state: { binary_data: b64(state) } })).payload).toHaveLength(state.length);
    expect(() => readingFromPublishEvent(json({ binary_data: b64(Buffer.concat([event, Buffer.from([1])])) }))).toThrow(
      expect.objectContaining({ code: 'ERR_PAYLOAD_TOO_LARGE', field: 'binary_data' }),
    );
    expect(() => readingFromSetState(json({ state: { binaryData: b64(Buffer.concat([state, Buffer.from([1])])) } }))).toThrow(
      expect.objectContaining({ code: 'ERR_PAYLOAD_TOO_LARGE', field: 'state.binaryData' }),
    );
  });
});

describe('raw bodies', () => {
  it('takes any bytes as the payload, and checks the subfolder and the size', () => {
    expect(readingFromRaw('event', Buffer.from([0, 255]), 'a/b')).toEqual({ type: 'event', payload: Buffer.from([0, 255]), subfolder: 'a/b' });
    expect(() => readingFromRaw('event', Buffer.alloc(1), '')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_SUBFOLDER', field: 'subfolder' }));
    expect(() => readingFromRaw('state', Buffer.alloc(64 * 1024 + 1))).toThrow(expect.objectContaining({ code: 'ERR_PAYLOAD_TOO_LARGE', field: 'body' }));
  });
});

describe('batch bodies', () => {
  it('reads each reading with the queue contract defaults', () => {
    const items = batchItemsFrom(
      json({
        readings: [
          { payload: '21.5' },
          { type: 'state', payload: b64('on'), encoding: 'base64', messageId: 's-1' },
          { type: 'event', subfolder: 'alarms', payload: 'high', encoding: 'utf8', messageId: 'e-1' },
        ],
      }),
    );

    expect(items).toEqual([
      { index: 0, reading: { type: 'event', payload: Buffer.from('21.5') } },
      { index: 1, reading: { type: 'state', payload: Buffer.from('on'), messageId: 's-1' } },
      { index: 2, reading: { type: 'event', subfolder: 'alarms', payload: Buffer.from('high'), messageId: 'e-1' } },
    ]);
  });

  it('refuses bad readings one by one, naming each', () => {
    const items = batchItemsFrom(
      json({
        readings: [
          { payload: 'ok' },
          { type: 'state', subfolder: 'x', payload: 'on' },
          { payload: 'aGk', encoding: 'base64' },
          { payload: 1 },
          { type: 'command', payload: 'x' },
          'text',
          { payload: 'x', extra: 1 },
          { payload: 'x', messageId: 'm-1' },
          { payload: 'y', messageId: 'm-1' },
        ],
      }),
    );

    expect(items.map((i) => ('error' in i ? `${i.error.field}: ${i.error.message}` : 'ok'))).toEqual([
      'ok',
      'readings[1].subfolder: readings[1].subfolder is only for events; state has no subfolders',
      'readings[2].payload: readings[2].payload is not valid base64 (standard alphabet, with padding)',
      'readings[3].payload: readings[3].payload must be a string',
      'readings[4].type: readings[4].type must be "event" or "state"',
      'readings[5]: readings[5] must be an object',
      'readings[6].extra: readings[6].extra is not a known field (expected type, subfolder, payload, encoding, messageId)',
      'ok',
      'readings[8].messageId: readings[8].messageId repeats readings[7].messageId',
    ]);
  });

  it(`refuses the request as a whole when readings is missing, empty or over ${MAX_BATCH_READINGS}`, () => {
    for (const body of [{}, { readings: [] }, { readings: {} }, { readings: Array(MAX_BATCH_READINGS + 1).fill({ payload: 'x' }) }, { readings: [{ payload: 'x' }], more: 1 }]) {
      expect(() => batchItemsFrom(json(body))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_FIELD' }));
    }
    expect(batchItemsFrom(json({ readings: Array(MAX_BATCH_READINGS).fill({ payload: 'x' }) }))).toHaveLength(MAX_BATCH_READINGS);
  });
});
