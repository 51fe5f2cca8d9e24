/**
 * Which gateway carries a device. Devices spread over the configured gateways by a stable hash of the device ID,
 * so the ingest handler, the poller and producers all pick the same FIFO message group for a device.
 * With one gateway, every device uses it.
 *
 * @example
 * gatewayFor('pump-0042', ['gw-1', 'gw-2', 'gw-3']); // always the same one of the three
 */
import { createHash } from 'node:crypto';
import { RelayError } from './errors.js';
import { deviceIdProblem } from './iotcore/device-id.js';

/** `IOTCORE_GATEWAY_IDS`, read; a setting, so every problem with it is an ERR_CONFIG naming the variable. */
export function parseGatewayIds(value: string | undefined): string[] {
  const ids = (value ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (ids.length === 0) throw new RelayError('ERR_CONFIG', 'IOTCORE_GATEWAY_IDS must list at least one gateway ID', { field: 'IOTCORE_GATEWAY_IDS' });
  ids.forEach((id, i) => {
    const problem = deviceIdProblem(id);
    if (problem !== undefined) throw new RelayError('ERR_CONFIG', `IOTCORE_GATEWAY_IDS[${i}] ${problem}`, { field: 'IOTCORE_GATEWAY_IDS' });
  });
  return ids;
}

/**
 * The first gateway is the default; with several, devices spread over the rest (DESIGN.md, environment table),
 * by the first 4 bytes of SHA-256 of the device ID, which is the same on every runtime and every release.
 */
export function gatewayFor(deviceId: string, gatewayIds: readonly string[]): string {
  if (gatewayIds.length === 0) throw new RelayError('ERR_CONFIG', 'no gateway IDs configured');
  if (gatewayIds.length === 1) return gatewayIds[0]!;
  const pool = gatewayIds.slice(1);
  const h = createHash('sha256').update(deviceId).digest().readUInt32BE(0);
  return pool[h % pool.length]!;
}
