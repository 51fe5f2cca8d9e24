import { describe, expect, it } from 'vitest';
import { gatewayFor } from '../../../lib/gateway-pool.js';
import { routeRecords } from '../../../lib/relay/route-records.js';
import { eventBody, inbound, pollBody, stateBody } from '../../helpers/relay-fixtures.js';

const GATEWAYS = ['gw-1', 'gw-2', 'gw-3'];

describe('routeRecords', () => {
  it('sends a record to its message group when that is a configured gateway', () => {
    const r = routeRecords([inbound(eventBody('pump-1'), { groupId: 'gw-3' }), inbound(stateBody('pump-2'), { groupId: 'gw-3' })], GATEWAYS);
    expect(r.batches).toHaveLength(1);
    expect(r.batches[0]!.gatewayId).toBe('gw-3');
    expect(r.batches[0]!.telemetry.map((t) => t.message.deviceId)).toEqual(['pump-1', 'pump-2']);
    expect(r.foreignGroups).toEqual([]);
  });

  it('uses the device\'s gateway on a standard queue, and for a group that is no gateway (reported)', () => {
    const plain = inbound(eventBody('pump-7'));
    const foreign = inbound(eventBody('pump-8'), { groupId: 'pump-8' });
    const r = routeRecords([plain, foreign], GATEWAYS);
    const where = new Map(r.batches.flatMap((b) => b.telemetry.map((t) => [t.message.deviceId, b.gatewayId] as const)));
    expect(where.get('pump-7')).toBe(gatewayFor('pump-7', GATEWAYS));
    expect(where.get('pump-8')).toBe(gatewayFor('pump-8', GATEWAYS));
    expect(r.foreignGroups).toEqual(['pump-8']);
  });

  it('splits a batch of several groups into one work list per gateway, each in queue order', () => {
    const records = [
      inbound(eventBody('a-001'), { groupId: 'gw-1' }),
      inbound(eventBody('b-001'), { groupId: 'gw-2' }),
      inbound(eventBody('a-002'), { groupId: 'gw-1' }),
      inbound(pollBody(['c-001']), { groupId: 'gw-2' }),
    ];
    const r = routeRecords(records, GATEWAYS);
    expect(r.batches.map((b) => [b.gatewayId, b.telemetry.map((t) => t.message.deviceId), b.polls.map((p) => p.message.deviceIds)])).toEqual([
      ['gw-1', ['a-001', 'a-002'], []],
      ['gw-2', ['b-001'], [['c-001']]],
    ]);
  });

  it('turns a malformed record into its own dead-letter outcome without touching the others', () => {
    const bad = inbound('{"v":1,"deviceId":"goog-1","payload":"x"}');
    const good = inbound(eventBody('pump-1'), { groupId: 'gw-1' });
    const r = routeRecords([bad, good], GATEWAYS);
    expect(r.rejected).toEqual([expect.objectContaining({ messageId: bad.messageId, outcome: 'dead-letter', code: 'ERR_INVALID_DEVICE_ID', field: 'deviceId' })]);
    expect(r.batches[0]!.telemetry[0]!.messageId).toBe(good.messageId);
  });

  it('refuses a poll job outside a gateway group whose devices belong to several gateways', () => {
    const ids = ['dev-001', 'dev-002', 'dev-003', 'dev-004', 'dev-005', 'dev-006'];
    const spread = new Set(ids.map((d) => gatewayFor(d, GATEWAYS)));
    expect(spread.size).toBeGreaterThan(1);
    const r = routeRecords([inbound(pollBody(ids))], GATEWAYS);
    expect(r.rejected[0]).toMatchObject({ code: 'ERR_INVALID_FIELD', field: 'deviceIds', outcome: 'dead-letter' });
    const one = ids.filter((d) => gatewayFor(d, GATEWAYS) === gatewayFor(ids[0]!, GATEWAYS));
    expect(routeRecords([inbound(pollBody(one))], GATEWAYS).batches[0]!.gatewayId).toBe(gatewayFor(ids[0]!, GATEWAYS));
  });
});
