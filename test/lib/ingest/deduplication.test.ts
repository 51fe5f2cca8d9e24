import { describe, expect, it } from 'vitest';
import { assertMessageId, deviceDeduplicationId, requestDeduplicationId } from '../../../lib/ingest/deduplication.js';

describe('deduplication IDs', () => {
  it("namespaces a device's message ID by device and type, within SQS's 128 characters", () => {
    const id = deviceDeduplicationId('pump-0042', 'event', '17');

    expect(id).toMatch(/^[0-9a-f]{64}$/);
    expect(deviceDeduplicationId('pump-0042', 'event', '17')).toBe(id);
    expect(deviceDeduplicationId('pump-0043', 'event', '17')).not.toBe(id);
    expect(deviceDeduplicationId('pump-0042', 'state', '17')).not.toBe(id);
    expect(deviceDeduplicationId(`p${'x'.repeat(254)}`, 'event', 'm'.repeat(128))).toHaveLength(64);
  });

  it('uses the request ID as it is when SQS takes it, with the reading index in a batch', () => {
    expect(requestDeduplicationId('JDd4ZgqzIAMEV2w=')).toBe('JDd4ZgqzIAMEV2w=');
    expect(requestDeduplicationId('JDd4ZgqzIAMEV2w=', 3)).toBe('JDd4ZgqzIAMEV2w=#3');
    expect(requestDeduplicationId('has space')).toMatch(/^[0-9a-f]{64}$/);
    expect(requestDeduplicationId('r'.repeat(200))).toMatch(/^[0-9a-f]{64}$/);
  });

  it('takes 1 to 128 printable ASCII characters as a message ID', () => {
    expect(() => assertMessageId('reading-17:2025', 'X-Message-Id')).not.toThrow();
    for (const bad of ['', 'a b', 'é', 'x'.repeat(129), 17]) {
      expect(() => assertMessageId(bad, 'X-Message-Id')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_FIELD', field: 'X-Message-Id' }));
    }
  });
});
