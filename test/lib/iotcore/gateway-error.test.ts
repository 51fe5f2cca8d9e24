import { describe, expect, it } from 'vitest';
import { parseGatewayError } from '../../../lib/iotcore/gateway-error.js';

describe('parseGatewayError', () => {
  it('reads the nested mqtt_message_info shape', () => {
    const e = parseGatewayError(
      JSON.stringify({
        error_type: 'GATEWAY_DEVICE_NOT_FOUND',
        description: "The specified device with ID 'd-1' is not attached to the gateway.",
        device_id: 'd-1',
        mqtt_message_info: { message_type: 'PUBLISH', topic: '/devices/d-1/state', packet_id: 7 },
      }),
    );
    expect(e).toMatchObject({ errorType: 'GATEWAY_DEVICE_NOT_FOUND', deviceId: 'd-1', messageType: 'PUBLISH', topic: '/devices/d-1/state', packetId: 7 });
  });

  it('reads the flat shape', () => {
    const e = parseGatewayError(
      Buffer.from(JSON.stringify({ error_type: 'GATEWAY_ATTACHMENT_ERROR', device_id: 'd-2', description: 'x', message_type: 'PUBLISH', topic: '/devices/d-2/attach', packet_id: 3 })),
    );
    expect(e).toMatchObject({ errorType: 'GATEWAY_ATTACHMENT_ERROR', deviceId: 'd-2', packetId: 3, topic: '/devices/d-2/attach' });
  });

  it('keeps an unknown type as UNKNOWN with the raw value', () => {
    expect(parseGatewayError('{"error_type":"SOMETHING_NEW","device_id":"d-1"}')).toMatchObject({ errorType: 'UNKNOWN', rawErrorType: 'SOMETHING_NEW' });
  });

  it.each(['', 'not json', '[]', 'null', '{"device_id":"x"}', '{"error_type":5}', '{"error_type":"UNKNOWN","mqtt_message_info":{"packet_id":-1}}'])(
    'never throws on hostile input %j',
    (raw) => {
      const e = parseGatewayError(raw);
      if (e !== undefined) expect(e.packetId).toBeUndefined();
    },
  );
});
