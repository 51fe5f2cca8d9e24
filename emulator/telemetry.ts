/**
 * Telemetry events and state from a device, or from a gateway for an attached device (docs/protocol.md §2, §4).
 *
 * - Events are routed by the registry's eventNotificationConfigs and recorded as the Pub/Sub message the registry's
 *   topic would carry; the PUBACK follows the recording. With no matching topic the bridge closes the connection
 *   and sets the device's lastErrorStatus (§1.6).
 * - State is stored (always, whatever the state notification config), at most once per second per device.
 *   A delegated device over that rate is detached with GATEWAY_DETACHMENT_DEVICE_ERROR, as seen on Google's
 *   bridge ([LOGS]), with no PUBACK unless `ackFailedPublish` (then the PUBACK comes first); a device connected by itself has its connection closed (the real behaviour is unconfirmed,
 *   §8 item 7).
 * - An oversized payload (events over 256 KB, state over 64 KB) closes the connection and sets lastErrorStatus:
 *   the bridge's documented answer to a packet it cannot take is to close, and no error type covers size.
 *
 * @example
 * if (handleTelemetry(connection, { deviceId: 'pump-1', kind: 'events', subfolder: 'alarms' }, packet, true)) puback();
 */
import type { IPublishPacket } from 'mqtt-packet';
import { MAX_EVENT_BYTES, MAX_STATE_BYTES } from '../lib/iotcore/limits.js';
import type { ConnectionPort } from './connection-port.js';
import { RPC } from '../lib/iotcore/rpc-status.js';
import { detachForDeviceError } from './gateway.js';
import type { PublishAnswer } from './gateway.js';
import { PUBACK_REFUSAL } from './mqtt5.js';

/** [CB-QUOTA]: state updates per device, 1 per second. */
const STATE_INTERVAL_MS = 1000;

export interface TelemetryTarget {
  deviceId: string;
  kind: 'events' | 'state';
  subfolder?: string;
}

/** Records one telemetry or state publish; true when it is to be PUBACKed, a refusal for a detached device. */
export function handleTelemetry(conn: ConnectionPort, target: TelemetryTarget, packet: IPublishPacket, viaGateway: boolean): PublishAnswer {
  const { registry, options, lastStateAt } = conn;
  const registryId = conn.registryId;
  const { deviceId } = target;
  const payload = typeof packet.payload === 'string' ? Buffer.from(packet.payload) : packet.payload;
  const refuse = (code: number, message: string): false => {
    const status = { code, message };
    // The device the data was for learns why; so does the gateway whose connection closes.
    if (deviceId !== conn.deviceId) registry.setLastError(registryId, deviceId, status);
    conn.close({ message, status });
    return false;
  };

  if (target.kind === 'events') {
    if (payload.length > MAX_EVENT_BYTES) {
      return refuse(RPC.INVALID_ARGUMENT, `telemetry event of ${payload.length} bytes for ${deviceId} exceeds ${MAX_EVENT_BYTES} bytes`);
    }
    const message = registry.recordEvent(registryId, deviceId, target.subfolder, payload, viaGateway ? conn.deviceId : undefined);
    if (message === undefined) {
      const sub = target.subfolder === undefined ? 'no subfolder' : `subfolder '${target.subfolder}'`;
      return refuse(RPC.FAILED_PRECONDITION, `registry ${registryId} has no Pub/Sub topic for telemetry with ${sub}`);
    }
  } else {
    if (payload.length > MAX_STATE_BYTES) {
      return refuse(RPC.INVALID_ARGUMENT, `state of ${payload.length} bytes for ${deviceId} exceeds ${MAX_STATE_BYTES} bytes`);
    }
    const key = `${registryId}/${deviceId}`;
    const now = Date.now();
    const last = lastStateAt.get(key);
    if (options.stateRateLimit && last !== undefined && now - last < STATE_INTERVAL_MS) {
      const why = `state updates exceed 1 per second (the last was ${now - last} ms ago)`;
      if (!viaGateway) return refuse(RPC.RESOURCE_EXHAUSTED, `${deviceId}: ${why}`);
      registry.setLastError(registryId, deviceId, { code: RPC.RESOURCE_EXHAUSTED, message: why });
      // With ackFailedPublish the refused packet is acknowledged first, and the detachment error follows it.
      conn.acknowledgeRefused(packet);
      detachForDeviceError(conn, deviceId, why);
      return { reasonCode: PUBACK_REFUSAL.quotaExceeded, reason: `${deviceId} was detached: ${why}`, plainAck: false };
    }
    lastStateAt.set(key, now);
    registry.recordState(registryId, deviceId, payload);
  }
  if (viaGateway) registry.noteGatewayAccess(registryId, deviceId, conn.deviceId);
  return true;
}
