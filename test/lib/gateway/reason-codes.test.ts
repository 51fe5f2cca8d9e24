import { describe, expect, it } from 'vitest';
import { dispositionOf } from '../../../lib/relay/outcomes.js';
import { connackFailure, pubackFailure } from '../../../lib/gateway/reason-codes.js';

const WHERE = 'bridge.example:8883';

describe('connackFailure', () => {
  it('explains a 3.1.1 return code as connect-options does', () => {
    const e = connackFailure({ returnCode: 4, sessionPresent: false }, 4, WHERE);
    expect(e).toMatchObject({ code: 'ERR_CONNECT_REFUSED_AUTH' });
    expect(e.message).toMatch(/^bridge\.example:8883 refused the connection: CONNACK 4, bad user name or password; check the gateway's private key/);
  });

  it.each([
    [0x86, 'ERR_CONNECT_REFUSED_AUTH', 'bad user name or password'],
    [0x87, 'ERR_CONNECT_REFUSED_AUTH', 'not authorized'],
    [0x85, 'ERR_TAKEOVER', 'client identifier not valid'],
    [0x88, 'ERR_CONNECT_REFUSED', 'server unavailable'],
    [0x9f, 'ERR_CONNECT_REFUSED', 'connection rate exceeded'],
    [0xfe, 'ERR_CONNECT_REFUSED', 'an unknown reason code'],
  ] as const)('maps the 5.0 reason code %i to %s', (returnCode, code, meaning) => {
    const e = connackFailure({ returnCode, sessionPresent: false }, 5, WHERE);
    expect(e.code).toBe(code);
    expect(e.message).toContain(`CONNACK 0x${returnCode.toString(16)}, ${meaning}`);
    expect(e.message.includes('check the gateway')).toBe(code === 'ERR_CONNECT_REFUSED_AUTH');
  });

  it.each([1, 0x84])('names RELAY_MQTT_VERSION=4 for a server that does not speak 5.0 (code %i)', (returnCode) => {
    const e = connackFailure({ returnCode, sessionPresent: false }, 5, WHERE);
    expect(e.code).toBe('ERR_CONNECT_REFUSED');
    expect(e.message).toMatch(/unsupported protocol version; the bridge does not accept MQTT 5\.0 connections; set RELAY_MQTT_VERSION=4$/);
  });

  it("quotes the bridge's reason string, cut short", () => {
    const e = connackFailure({ returnCode: 0x87, sessionPresent: false, reasonString: `blocked ${'x'.repeat(400)}` }, 5, WHERE);
    expect(e.message).toContain('CONNACK 0x87, not authorized ("blocked xxx');
    expect(e.message.length).toBeLessThan(600);
  });
});

describe('pubackFailure', () => {
  const refusal = (reasonCode: number, reasonString?: string) => ({ reasonCode, reasonString });

  it('fails a record of a device the bridge has not attached as GATEWAY_DEVICE_NOT_FOUND would, retried', () => {
    const f = pubackFailure('publish', refusal(0x87, "Device 'pump-1' is not attached to gateway 'gw-1'."));
    expect(f).toEqual({ code: 'ERR_DEVICE_NOT_FOUND', reason: "PUBACK 0x87 (not authorized): Device 'pump-1' is not attached to gateway 'gw-1'." });
    expect(dispositionOf(f.code)).toBe('retry');
  });

  it.each([
    [0x97, 'ERR_DEVICE_DETACHED', 'quota exceeded'],
    [0x90, 'ERR_INVALID_TOPIC', 'topic name invalid'],
    [0x80, 'ERR_GATEWAY_ERROR', 'unspecified error'],
    [0x99, 'ERR_GATEWAY_ERROR', 'payload format invalid'],
  ] as const)('maps a record PUBLISH refused with %i to %s', (code, relayCode, meaning) => {
    expect(pubackFailure('publish', refusal(code))).toEqual({ code: relayCode, reason: `PUBACK 0x${code.toString(16)} (${meaning})` });
  });

  it('fails any refused attach as a refused attach (dead-lettered, as GATEWAY_ATTACHMENT_ERROR is)', () => {
    for (const code of [0x80, 0x87, 0x97]) expect(pubackFailure('attach', refusal(code, 'no')).code).toBe('ERR_ATTACH_REJECTED');
    expect(dispositionOf('ERR_ATTACH_REJECTED')).toBe('dead-letter');
  });

  it('keeps a long reason string short', () => {
    expect(pubackFailure('publish', refusal(0x87, 'y'.repeat(1000))).reason.length).toBeLessThan(340);
  });
});
