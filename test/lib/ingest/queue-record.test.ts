import { describe, expect, it } from 'vitest';
import { gatewayFor } from '../../../lib/gateway-pool.js';
import { telemetryRecord } from '../../../lib/ingest/queue-record.js';
import { parseQueueMessage } from '../../../lib/queue/message.js';

const GATEWAYS = ['gw-1', 'gw-2', 'gw-3', 'gw-4'];

describe('telemetryRecord', () => {
  it('carries the reading in queue contract v1, binary-safe, in the message group of the gateway that holds the device', () => {
    const payload = Buffer.from([0x00, 0xff, 0x10, 0x80]);
    const record = telemetryRecord({ type: 'event', deviceId: 'pump-0042', subfolder: 'alerts', payload }, GATEWAYS, 'dedup-1');
    expect(record.groupId).toBe(gatewayFor('pump-0042', GATEWAYS));
    expect(record.deduplicationId).toBe('dedup-1');
    expect(parseQueueMessage(record.body)).toEqual({ v: 1, type: 'event', deviceId: 'pump-0042', subfolder: 'alerts', payload });
  });

  it('keeps the device token and the state type', () => {
    const token = 'aGVhZGVy.Y2xhaW1z.c2ln';
    const record = telemetryRecord({ type: 'state', deviceId: 'valve-7', payload: Buffer.from('{"open":true}'), deviceToken: token }, GATEWAYS, 'dedup-2');
    expect(parseQueueMessage(record.body)).toEqual({ v: 1, type: 'state', deviceId: 'valve-7', payload: Buffer.from('{"open":true}'), deviceToken: token });
  });

  it('puts every record of one device in one group, and spreads devices over the gateways', () => {
    const groups = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const deviceId = `sensor-${i}`;
      const a = telemetryRecord({ type: 'event', deviceId, payload: Buffer.from('1') }, GATEWAYS, `a-${i}`);
      const b = telemetryRecord({ type: 'state', deviceId, payload: Buffer.from('2') }, GATEWAYS, `b-${i}`);
      expect(a.groupId).toBe(b.groupId);
      groups.add(a.groupId!);
    }
    expect([...groups].sort()).toEqual(GATEWAYS);
  });
});
