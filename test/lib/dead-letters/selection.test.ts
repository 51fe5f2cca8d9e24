import type { Message } from '@aws-sdk/client-sqs';
import { describe, expect, it } from 'vitest';
import { deadLetterOf } from '../../../lib/dead-letters/dead-letter.js';
import {
  matchesFilter,
  parseCodes,
  parseDevices,
  parseDuration,
  parseTypes,
  PERMANENT_CODES,
  permanentFailure,
  replayGroupId,
} from '../../../lib/dead-letters/selection.js';
import { isRelayError } from '../../../lib/errors.js';
import { gatewayFor } from '../../../lib/gateway-pool.js';
import { DISPOSITIONS } from '../../../lib/relay/outcomes.js';

const NOW = Date.parse('2030-01-01T12:00:00Z');

function message(body: string, attributes: Record<string, string> = {}, o: { group?: string; sentAgoMs?: number } = {}): Message {
  return {
    MessageId: 'dl-1',
    ReceiptHandle: 'rh-1',
    Body: body,
    Attributes: { SentTimestamp: String(NOW - (o.sentAgoMs ?? 0)), ...(o.group === undefined ? {} : { MessageGroupId: o.group }) },
    MessageAttributes: Object.fromEntries(Object.entries(attributes).map(([k, v]) => [k, { DataType: 'String', StringValue: v }])),
  };
}

const event = (deviceId: string): string => JSON.stringify({ v: 1, deviceId, payload: '21.5' });
const rejected = (deviceId: string, o: { group?: string; sentAgoMs?: number } = {}) =>
  deadLetterOf(message(event(deviceId), { 'relay.errorCode': 'ERR_ATTACH_REJECTED', 'relay.reason': 'not bound', 'relay.deviceId': deviceId, 'relay.gatewayId': 'gw-1', 'relay.receiveCount': '2' }, { group: 'gw-1', ...o }));

describe('filters', () => {
  it('parse codes, devices, types and durations, and name the flag of a bad value', () => {
    expect(parseCodes('ERR_ATTACH_REJECTED, ERR_INVALID_*,redrive')).toEqual(['ERR_ATTACH_REJECTED', 'ERR_INVALID_*', 'redrive']);
    expect(parseDevices('ghost-0001,pump-*')).toEqual(['ghost-0001', 'pump-*']);
    expect(parseTypes('event,state')).toEqual(['event', 'state']);
    expect([parseDuration('90', '--x'), parseDuration('90s', '--x'), parseDuration('15m', '--x'), parseDuration('2h', '--x'), parseDuration('3d', '--x')]).toEqual([90, 90, 900, 7200, 259_200]);
    for (const bad of [() => parseCodes('err_lower'), () => parseCodes(' , '), () => parseDevices('a/b'), () => parseTypes('poll'), () => parseDuration('1w', '--older-than')]) {
      let error: unknown;
      try {
        bad();
      } catch (e) {
        error = e;
      }
      expect(isRelayError(error) && error.code).toBe('ERR_INVALID_FIELD');
      expect((error as Error).message).toMatch(/^--/);
    }
  });

  it('match by code or prefix, redrive, device or prefix, type, and age', () => {
    const ghost = rejected('ghost-0001', { sentAgoMs: 600_000 });
    const moved = deadLetterOf(message(event('pump-01'), {}, { sentAgoMs: 10_000 }));
    const poll = deadLetterOf(message(JSON.stringify({ v: 1, type: 'config-poll', deviceIds: ['valve-01'] })));

    expect(matchesFilter(ghost, {}, NOW)).toBe(true);
    expect(matchesFilter(ghost, { codes: ['ERR_ATTACH_REJECTED'] }, NOW)).toBe(true);
    expect(matchesFilter(ghost, { codes: ['ERR_ATTACH_*'] }, NOW)).toBe(true);
    expect(matchesFilter(ghost, { codes: ['ERR_INVALID_*', 'redrive'] }, NOW)).toBe(false);
    expect(matchesFilter(moved, { codes: ['redrive'] }, NOW)).toBe(true);
    expect(matchesFilter(moved, { codes: ['ERR_*'] }, NOW)).toBe(false);
    expect(matchesFilter(ghost, { devices: ['ghost-*'] }, NOW)).toBe(true);
    expect(matchesFilter(ghost, { devices: ['ghost-0002'] }, NOW)).toBe(false);
    expect(matchesFilter(poll, { devices: ['valve-01'] }, NOW)).toBe(true);
    expect(matchesFilter(poll, { types: ['event'] }, NOW)).toBe(false);
    expect(matchesFilter(ghost, { olderThanSeconds: 599 }, NOW)).toBe(true);
    expect(matchesFilter(ghost, { olderThanSeconds: 601 }, NOW)).toBe(false);
    expect(matchesFilter(moved, { newerThanSeconds: 11 }, NOW)).toBe(true);
    expect(matchesFilter(moved, { newerThanSeconds: 10 }, NOW)).toBe(false);
  });
});

describe('permanentFailure', () => {
  it('holds for the content codes and for a body the contract refuses today, and not for a refused attach', () => {
    const invalid = deadLetterOf(message('{"v":1,"deviceId":"pump-01","encoding":"base64","payload":"%%"}', { 'relay.errorCode': 'ERR_INVALID_BASE64', 'relay.reason': 'payload is not valid base64' }));
    const topic = deadLetterOf(message(event('pump-01'), { 'relay.errorCode': 'ERR_INVALID_TOPIC', 'relay.reason': 'GATEWAY_INVALID_MQTT_TOPIC' }));
    const movedBad = deadLetterOf(message('{"v":1,"deviceId":"pump-01","payload":"x","colour":"red"}'));
    const movedGood = deadLetterOf(message(event('pump-01')));

    expect(permanentFailure(invalid)).toEqual({ code: 'ERR_INVALID_BASE64', reason: 'payload is not valid base64' });
    expect(permanentFailure(topic)?.code).toBe('ERR_INVALID_TOPIC');
    expect(permanentFailure(movedBad)).toEqual({ code: 'ERR_INVALID_FIELD', reason: 'colour is not a field of queue contract v1' });
    expect(permanentFailure(movedGood)).toBeUndefined();
    expect(permanentFailure(rejected('ghost-0001'))).toBeUndefined();
  });

  it('lists only codes the relay dead-letters', () => {
    for (const code of PERMANENT_CODES) expect(DISPOSITIONS[code].disposition).toBe('dead-letter');
  });
});

describe('replayGroupId', () => {
  it('is the device\'s gateway when the gateways are known, else the group the record came from', () => {
    const ghost = rejected('ghost-0001');
    const poll = deadLetterOf(message(JSON.stringify({ v: 1, type: 'config-poll', deviceIds: ['valve-01'] }), {}, { group: 'gw-3' }));
    const orphan = deadLetterOf(message('not json'));
    const gateways = ['gw-1', 'gw-2', 'gw-3'];

    expect(replayGroupId(ghost, gateways)).toBe(gatewayFor('ghost-0001', gateways));
    expect(replayGroupId(ghost, undefined)).toBe('gw-1');
    expect(replayGroupId(poll, gateways)).toBe('gw-3');
    expect(replayGroupId(orphan, gateways)).toBeUndefined();
  });
});
