/**
 * The gateway pool, and which of its gateways carries a device. Ingest, the relay's routing, the poller, the fleet
 * command and producers that write to the queue themselves all call `gatewayFor`, so a device has one gateway and
 * one FIFO message group wherever it is computed.
 *
 * The assignment is rendezvous (highest random weight) hashing: every gateway of the pool gets a score for the
 * device, the lowercase hex SHA-256 of the UTF-8 text `<gatewayId>/<deviceId>`, and the highest score wins. Hence:
 * - it is stable: the same device and the same pool give the same gateway, whatever the order of the pool, on any
 *   runtime and release;
 * - adding a gateway moves only the devices the newcomer now wins, about 1/(N+1) of them, each to the newcomer;
 * - removing a gateway moves only that gateway's devices, each to its runner-up;
 * - it fits in two lines of any language (docs/ingest.md has JavaScript and Python versions, and
 *   schema/gateway-assignment-vectors.json the vectors every version must pass).
 * `/` cannot occur in an IoT Core ID, so no two (gateway, device) pairs hash the same text.
 *
 * A pool is written compactly, because Lambda allows 4 KB of environment in all: a comma-separated list whose
 * items may hold numeric ranges, `gw-{000..299}` being 300 gateways `gw-000` .. `gw-299` (docs/relay.md).
 *
 * @example
 * const pool = parseGatewayIds('gw-{01..03}'); // ['gw-01', 'gw-02', 'gw-03']
 * gatewayFor('pump-0042', pool);               // always the same one of the three
 */
import { hash } from 'node:crypto';
import { RelayError } from './errors.js';
import { deviceIdProblem, topicDeviceIdProblem } from './iotcore/device-id.js';

/** More gateways than any project needs (10,000 x 10,000 bound devices is 100 million); also bounds expansion. */
export const MAX_POOL_SIZE = 10_000;

const RANGE = /\{(\d+)\.\.(\d+)\}/;

/**
 * The pool written in `value` (IOTCORE_GATEWAY_IDS), expanded and checked. Throws ERR_CONFIG naming the item at
 * fault: an empty pool, an unbalanced or non-numeric brace, a range written high to low, a pool above
 * MAX_POOL_SIZE, an ID IoT Core refuses, or a gateway listed twice.
 */
export function parseGatewayIds(value: string | undefined, name = 'IOTCORE_GATEWAY_IDS'): string[] {
  const items = (value ?? '').split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (items.length === 0) throw poolError(name, 'must list at least one gateway ID (for example gw-1 or gw-{000..099})');
  const ids: string[] = [];
  const seen = new Set<string>();
  for (const item of items) {
    for (const id of expandItem(item, name)) {
      // A gateway's ID goes into its topics (errors, config), so it must be one MQTT takes in a topic name too.
      const problem = deviceIdProblem(id) ?? topicDeviceIdProblem(id);
      if (problem !== undefined) throw poolError(name, `item ${JSON.stringify(item)}: gateway ID ${JSON.stringify(id)} ${problem}`);
      if (seen.has(id)) throw poolError(name, `lists gateway ${id} twice`);
      seen.add(id);
      ids.push(id);
      if (ids.length > MAX_POOL_SIZE) throw poolError(name, `expands to more than ${MAX_POOL_SIZE} gateways`);
    }
  }
  return ids;
}

/** `gw-{1..3}` -> gw-1, gw-2, gw-3; `gw-{01..10}` pads to the width written; several ranges multiply. */
function expandItem(item: string, name: string): string[] {
  const match = RANGE.exec(item);
  if (match === null) {
    if (/[{}]/.test(item)) {
      throw poolError(name, `item ${JSON.stringify(item)}: a brace must hold a numeric range such as {000..299}`);
    }
    return [item];
  }
  const [whole, fromText, toText] = match as unknown as [string, string, string];
  const from = Number(fromText);
  const to = Number(toText);
  if (fromText.length > 6 || toText.length > 6) throw poolError(name, `item ${JSON.stringify(item)}: range bounds of at most 6 digits`);
  if (from > to) throw poolError(name, `item ${JSON.stringify(item)}: write the range low to high ({${toText}..${fromText}})`);
  if (to - from + 1 > MAX_POOL_SIZE) throw poolError(name, `item ${JSON.stringify(item)}: expands to more than ${MAX_POOL_SIZE} gateways`);
  const padded = fromText.startsWith('0') || toText.startsWith('0');
  const width = padded ? Math.max(fromText.length, toText.length) : 0;
  const head = item.slice(0, match.index);
  const tails = expandItem(item.slice(match.index + whole.length), name);
  const out: string[] = [];
  for (let n = from; n <= to; n++) {
    for (const tail of tails) out.push(`${head}${String(n).padStart(width, '0')}${tail}`);
    if (out.length > MAX_POOL_SIZE) throw poolError(name, `item ${JSON.stringify(item)}: expands to more than ${MAX_POOL_SIZE} gateways`);
  }
  return out;
}

function poolError(name: string, why: string): RelayError {
  return new RelayError('ERR_CONFIG', `${name} ${why}`, { field: name });
}

/** The score of `gatewayId` for `deviceId`: 64 lowercase hex digits, compared as text (the same as as numbers). */
export function assignmentScore(gatewayId: string, deviceId: string): string {
  return hash('sha256', `${gatewayId}/${deviceId}`, 'hex');
}

/** The gateway of `pool` that carries `deviceId`: the one with the highest score. */
export function gatewayFor(deviceId: string, pool: readonly string[]): string {
  if (pool.length === 0) throw new RelayError('ERR_CONFIG', 'no gateway IDs configured');
  if (pool.length === 1) return pool[0]!;
  let best = '';
  let winner = pool[0]!;
  for (const gatewayId of pool) {
    const score = assignmentScore(gatewayId, deviceId);
    if (score > best) {
      best = score;
      winner = gatewayId;
    }
  }
  return winner;
}

/**
 * `gatewayFor` for many devices, remembering answers: the poller and the fleet command ask about the same devices
 * again and again, and each answer costs one hash per gateway. The memory is bounded; past it, the oldest answers
 * are forgotten.
 */
export class GatewayAssignment {
  readonly #pool: readonly string[];
  readonly #memo = new Map<string, string>();
  readonly #limit: number;

  constructor(pool: readonly string[], limit = 100_000) {
    if (pool.length === 0) throw new RelayError('ERR_CONFIG', 'no gateway IDs configured');
    this.#pool = [...pool];
    this.#limit = limit;
  }

  get pool(): readonly string[] {
    return this.#pool;
  }

  gatewayFor(deviceId: string): string {
    const known = this.#memo.get(deviceId);
    if (known !== undefined) return known;
    const gatewayId = gatewayFor(deviceId, this.#pool);
    if (this.#memo.size >= this.#limit) this.#memo.delete(this.#memo.keys().next().value as string);
    this.#memo.set(deviceId, gatewayId);
    return gatewayId;
  }
}

let lastAssignment: GatewayAssignment | undefined;
let lastPoolKey = '';

/**
 * The shared `GatewayAssignment` of `pool`, so a warm container's poller remembers its answers between runs. One
 * pool is kept: a container serves one configuration.
 */
export function assignmentFor(pool: readonly string[]): GatewayAssignment {
  const key = pool.join(',');
  if (lastAssignment === undefined || key !== lastPoolKey) {
    lastAssignment = new GatewayAssignment(pool);
    lastPoolKey = key;
  }
  return lastAssignment;
}
