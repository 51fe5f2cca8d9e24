/**
 * What the bridge's MQTT 5.0 reason codes mean for the relay (RELAY_MQTT_VERSION=5): a CONNACK that refuses the
 * connection, explained as connect-options.ts explains a 3.1.1 return code, and a PUBACK that refuses a packet,
 * turned into the failure of what the packet carried. A PUBACK refusal tells a failed publish apart at once, where
 * 3.1.1 leaves only the errors topic (best effort) and the PUBACK timeout.
 *
 * @example
 * connackFailure({ returnCode: 0x86, sessionPresent: false }, 5, 'mqtt.example:8883'); // RelayError ERR_CONNECT_REFUSED_AUTH
 * pubackFailure('publish', { reasonCode: 0x87, reasonString: "Device 'pump-1' is not attached ..." });
 * // { code: 'ERR_DEVICE_NOT_FOUND', reason: "PUBACK 0x87 (not authorized): Device 'pump-1' is not attached ..." }
 */
import { RelayError, type RelayErrorCode } from '../errors.js';
import { connackRefusal, CHECK_CREDENTIALS } from './connect-options.js';
import type { SentPacket } from './error-correlation.js';
import type { Connack, PubackRefusal } from './mqtt-link.js';
import type { Failure } from './session-ledger.js';

/** MQTT 5.0 CONNACK reason codes (§3.2.2.2) a bridge may refuse with, and the relay's code for each. */
const CONNACK_5: Readonly<Record<number, { meaning: string; code: RelayErrorCode }>> = {
  0x80: { meaning: 'unspecified error', code: 'ERR_CONNECT_REFUSED' },
  0x81: { meaning: 'malformed packet', code: 'ERR_CONNECT_REFUSED' },
  0x82: { meaning: 'protocol error', code: 'ERR_CONNECT_REFUSED' },
  0x83: { meaning: 'implementation specific error', code: 'ERR_CONNECT_REFUSED' },
  0x84: { meaning: 'unsupported protocol version', code: 'ERR_CONNECT_REFUSED' },
  // The gateway's client ID is always well formed: as with 3.1.1's 2, another live connection holds it.
  0x85: { meaning: 'client identifier not valid', code: 'ERR_TAKEOVER' },
  0x86: { meaning: 'bad user name or password', code: 'ERR_CONNECT_REFUSED_AUTH' },
  0x87: { meaning: 'not authorized', code: 'ERR_CONNECT_REFUSED_AUTH' },
  0x88: { meaning: 'server unavailable', code: 'ERR_CONNECT_REFUSED' },
  0x89: { meaning: 'server busy', code: 'ERR_CONNECT_REFUSED' },
  0x8a: { meaning: 'banned', code: 'ERR_CONNECT_REFUSED_AUTH' },
  0x8c: { meaning: 'bad authentication method', code: 'ERR_CONNECT_REFUSED_AUTH' },
  0x97: { meaning: 'quota exceeded', code: 'ERR_CONNECT_REFUSED' },
  0x9f: { meaning: 'connection rate exceeded', code: 'ERR_CONNECT_REFUSED' },
};

/** MQTT 5.0 PUBACK failure reason codes (§3.4.2.1), named for a record's reason. */
const PUBACK_MEANING: Readonly<Record<number, string>> = {
  0x80: 'unspecified error',
  0x83: 'implementation specific error',
  0x87: 'not authorized',
  0x90: 'topic name invalid',
  0x91: 'packet identifier in use',
  0x97: 'quota exceeded',
  0x99: 'payload format invalid',
};

const SET_VERSION_4 = 'the bridge does not accept MQTT 5.0 connections; set RELAY_MQTT_VERSION=4';

/** Why a CONNACK with a non-zero code refused the connection, for a link of `protocolVersion`. */
export function connackFailure(connack: Connack, protocolVersion: 4 | 5, where: string): RelayError {
  if (protocolVersion === 4) return connackRefusal(connack.returnCode, where);
  const code = connack.returnCode;
  const said = connack.reasonString === undefined ? '' : ` ("${connack.reasonString.slice(0, 200)}")`;
  // A 3.1.1-only server answers a 5.0 CONNECT with its return code 1, which is no 5.0 reason code ([MQTT-3.1.2-2]).
  if (code === 1 || code === 0x84) {
    return new RelayError('ERR_CONNECT_REFUSED', `${where} refused the connection: CONNACK ${hex(code)}, unsupported protocol version${said}; ${SET_VERSION_4}`);
  }
  const known = CONNACK_5[code];
  const meaning = known?.meaning ?? 'an unknown reason code';
  const hint = known?.code === 'ERR_CONNECT_REFUSED_AUTH' ? `; ${CHECK_CREDENTIALS}` : '';
  return new RelayError(known?.code ?? 'ERR_CONNECT_REFUSED', `${where} refused the connection: CONNACK ${hex(code)}, ${meaning}${said}${hint}`);
}

/**
 * The failure a refusing PUBACK gives the packet it answers. On a record's PUBLISH, 0x87 is the bridge saying the
 * device is not attached (the 5.0 answer to what 3.1.1 reports as GATEWAY_DEVICE_NOT_FOUND), 0x97 a device detached
 * for its rate, 0x90 a topic it will not take; any other code is a gateway error to back off from. On an attach
 * every refusal is a refused attach.
 */
export function pubackFailure(kind: SentPacket['kind'], refusal: PubackRefusal): Failure {
  const { reasonCode } = refusal;
  const said = refusal.reasonString === undefined || refusal.reasonString === '' ? '' : `: ${refusal.reasonString.slice(0, 300)}`;
  const reason = `PUBACK ${hex(reasonCode)} (${PUBACK_MEANING[reasonCode] ?? 'an unknown reason code'})${said}`;
  if (kind === 'attach') return { code: 'ERR_ATTACH_REJECTED', reason };
  if (reasonCode === 0x87) return { code: 'ERR_DEVICE_NOT_FOUND', reason };
  if (reasonCode === 0x97) return { code: 'ERR_DEVICE_DETACHED', reason };
  if (reasonCode === 0x90) return { code: 'ERR_INVALID_TOPIC', reason };
  return { code: 'ERR_GATEWAY_ERROR', reason };
}

function hex(code: number): string {
  return `0x${code.toString(16).padStart(2, '0')}`;
}
