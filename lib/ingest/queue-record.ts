/**
 * One telemetry record for the relay queue: the body in queue contract v1, and the FIFO message group of the
 * gateway that carries the device (`gatewayFor` in lib/gateway-pool.ts, the one place that decides it). Every HTTP
 * producer of this project (the device ingest, the LoRaWAN webhooks) builds its records here, so a device's
 * records always land in the same group whichever way they arrive.
 *
 * @example
 * const record = telemetryRecord({ type: 'event', deviceId: 'pump-0042', payload }, ['gw-1', 'gw-2'], dedupId);
 * await queue.send([record]);
 */
import { gatewayFor } from '../gateway-pool.js';
import { encodeTelemetryMessage, type TelemetryMessage } from '../queue/message.js';
import type { QueueRecord } from '../queue/relay-queue.js';

export function telemetryRecord(message: Omit<TelemetryMessage, 'v'>, gatewayIds: readonly string[], deduplicationId: string): QueueRecord {
  return { body: encodeTelemetryMessage(message), groupId: gatewayFor(message.deviceId, gatewayIds), deduplicationId };
}
