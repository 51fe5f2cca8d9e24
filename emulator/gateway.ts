/**
 * Attach and detach, the gateway control messages (docs/protocol.md §3.2–3.3, [CB-GW]). A gateway publishes
 * QoS 1 to `/devices/{id}/attach`; how the device is authorised depends on the gateway's gatewayAuthMethod:
 *
 * | method                             | bound? | device JWT in the payload? |
 * |------------------------------------|--------|----------------------------|
 * | ASSOCIATION_ONLY                   | yes    | ignored                    |
 * | DEVICE_AUTH_TOKEN_ONLY             | no     | yes                        |
 * | ASSOCIATION_AND_DEVICE_AUTH_TOKEN  | yes    | yes                        |
 * | GATEWAY_AUTH_METHOD_UNSPECIFIED    | no device may attach                |
 *
 * Success is a PUBACK (also for a device already attached). Failure is GATEWAY_ATTACHMENT_ERROR on the errors
 * topic, with no PUBACK unless `ackFailedAttach` is set, and never one when the gateway is not subscribed to its
 * errors topic (ClearBlade only logs a failure nobody subscribed to hear, and leaves the attach unacknowledged: [CB-GW]).
 * On an MQTT 5.0 connection a failure is also a PUBACK with reason code 0x87, whatever the subscription (mqtt5.ts).
 * Detach always gets a PUBACK, attached or not.
 *
 * @example
 * parseAttachToken(Buffer.from(`{ 'authorization' : ${jwt} }`)); // jwt — the ClearBlade node sample's form
 */
import type { IPublishPacket } from 'mqtt-packet';
import { MAX_ATTACHED_PER_GATEWAY } from '../lib/iotcore/limits.js';
import { verifyDeviceToken } from './auth.js';
import type { ConnectionPort } from './connection-port.js';
import { PUBACK_REFUSAL } from './mqtt5.js';
import type { PublishRefusal } from './mqtt5.js';

/** How the bridge answers a publish it handled: a PUBACK (true), nothing (false), or a refusal (mqtt5.ts). */
export type PublishAnswer = boolean | PublishRefusal;

/**
 * The device JWT of an attach payload, or undefined when there is none. Lenient on purpose: Python samples send
 * `{"authorization" : ""}`, the ClearBlade node sample `{ 'authorization' : <jwt> }` (single quotes, unquoted
 * token, not JSON), others `{}` or nothing (docs/protocol.md §7).
 */
export function parseAttachToken(payload: Buffer | string): string | undefined {
  const text = (typeof payload === 'string' ? payload : payload.toString('utf8')).trim();
  if (text === '') return undefined;
  try {
    const doc: unknown = JSON.parse(text);
    if (typeof doc === 'object' && doc !== null && !Array.isArray(doc)) {
      const token = (doc as Record<string, unknown>)['authorization'];
      return typeof token === 'string' && token.trim() !== '' ? token.trim() : undefined;
    }
    return undefined;
  } catch {
    // not JSON: look for the key with any quoting, and a token made of JWS characters
  }
  const m = /["']?authorization["']?\s*:\s*["']?([A-Za-z0-9_\-.]*)["']?/.exec(text);
  return m?.[1] ? m[1] : undefined;
}

/** Handles an attach; resolves true when it is to be PUBACKed, a refusal when it failed. */
export async function handleAttach(conn: ConnectionPort, deviceId: string, packet: IPublishPacket): Promise<PublishAnswer> {
  const { registry, options } = conn;
  const gatewayId = conn.deviceId;
  const fail = (why: string): PublishRefusal => {
    conn.log(`attach of ${deviceId} refused: ${why}`);
    const description = `Device '${deviceId}' could not be attached to gateway '${gatewayId}': ${why}.`;
    const delivered = conn.report({
      type: 'GATEWAY_ATTACHMENT_ERROR',
      deviceId,
      description,
      packet: { messageType: 'PUBLISH', topic: packet.topic, packetId: packet.messageId ?? 0 },
    });
    // Without a subscriber for the error the failure is only logged and never acknowledged on 3.1.1 ([CB-GW]).
    return { reasonCode: PUBACK_REFUSAL.notAuthorized, reason: description, plainAck: delivered && options.ackFailedAttach };
  };

  // [CB-GW]: attaching a device that is already attached is answered with a PUBACK.
  if (conn.attached.has(deviceId)) return true;
  const gateway = registry.findDevice(conn.registryId, gatewayId);
  const method = gateway?.gatewayConfig.gatewayAuthMethod ?? 'GATEWAY_AUTH_METHOD_UNSPECIFIED';
  if (method === 'GATEWAY_AUTH_METHOD_UNSPECIFIED') return fail('the gateway has no gatewayAuthMethod, so no device may use it');
  const device = registry.findDevice(conn.registryId, deviceId);
  if (device === undefined || device.id !== deviceId) return fail(`no device '${deviceId}' in registry ${conn.registryId}`);
  if (device.gatewayConfig.gatewayType === 'GATEWAY') return fail('a gateway cannot be attached to another gateway');
  if (device.blocked) return fail('the device is blocked');
  const needsBinding = method === 'ASSOCIATION_ONLY' || method === 'ASSOCIATION_AND_DEVICE_AUTH_TOKEN';
  const needsToken = method === 'DEVICE_AUTH_TOKEN_ONLY' || method === 'ASSOCIATION_AND_DEVICE_AUTH_TOKEN';
  if (needsBinding && !registry.isBound(conn.registryId, gatewayId, deviceId)) {
    return fail(`the device is not bound to the gateway (gatewayAuthMethod ${method})`);
  }
  if (needsToken) {
    const token = parseAttachToken(packet.payload);
    if (token === undefined) return fail(`gatewayAuthMethod ${method} needs the device's JWT as {"authorization": "<jwt>"}`);
    // The same rules as a CONNECT password (aud = project, 24 h, skew): assumed, docs/protocol.md §8 item 9.
    const verdict = await verifyDeviceToken(token, device.credentials, {
      project: registry.project,
      skewSeconds: options.clockSkewSeconds,
      lifetimeWithSkew: options.jwtLifetime === 'with-skew',
    });
    if (!verdict.ok) return fail(`the device JWT was refused: ${verdict.reason}`);
  }
  if (conn.closed) return false;
  if (conn.attached.size >= MAX_ATTACHED_PER_GATEWAY) {
    return fail(`the gateway already has ${MAX_ATTACHED_PER_GATEWAY} devices attached, the most one gateway may have`);
  }
  conn.attached.add(deviceId);
  registry.noteGatewayAccess(conn.registryId, deviceId, gatewayId);
  conn.log(`attached ${deviceId}`);
  return true;
}

/** Handles a detach: always PUBACKed, even for a device that is not attached ([CB-GW], "Detaching"). */
export function handleDetach(conn: ConnectionPort, deviceId: string): boolean {
  if (conn.attached.has(deviceId)) {
    conn.detach(deviceId);
    conn.log(`detached ${deviceId}`);
  }
  return true;
}

/** The bridge detaches a delegated device after a device error, and tells the gateway ([LOGS]). */
export function detachForDeviceError(conn: ConnectionPort, deviceId: string, why: string): void {
  conn.detach(deviceId);
  conn.log(`detached ${deviceId} after a device error: ${why}`);
  conn.report({
    type: 'GATEWAY_DETACHMENT_DEVICE_ERROR',
    deviceId,
    description: `Device '${deviceId}' was detached from gateway '${conn.deviceId}' because of a device error: ${why}.`,
  });
}
