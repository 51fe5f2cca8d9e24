/**
 * Writes schema/gateway-assignment-vectors.json: the cases every implementation of the device-to-gateway
 * assignment must pass (lib/gateway-pool.ts; the JavaScript and Python versions in docs/ingest.md). The expected
 * gateways are computed here from the rule itself, with Node's SHA-256, and checked by the tests against the
 * library, both documented versions and an independent SHA-256 (Python's hashlib).
 *
 *   npx tsx scripts/gateway-vectors.ts          rewrite the file
 *   npx tsx scripts/gateway-vectors.ts --check  exit 1 if the file differs from what the rule gives
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { assignmentScore, gatewayFor, parseGatewayIds } from '../lib/gateway-pool.js';

const FILE = fileURLToPath(new URL('../schema/gateway-assignment-vectors.json', import.meta.url));

const POOLS: Record<string, string> = {
  one: 'gw-1',
  three: 'gw-1,gw-2,gw-3',
  ten: 'gw-{01..10}',
  'ten-plus-one': 'gw-{01..11}',
  hundred: 'gw-{000..099}',
  mixed: 'edge.eu-1,edge.us-{1..3},gw~spare',
};

const DEVICES = [
  'pump-0001', 'pump-0002', 'pump-0042', 'valve-01', 'sensor-9999', 'a12', 'lora-70b3d57ed005a1b2',
  'Meter.Floor%2F3', 'tank~level+1', 'x'.repeat(1) + 'y'.repeat(254),
];

const EXPRESSIONS: { expression: string; expands?: string[]; error?: string }[] = [
  { expression: 'gw-1', expands: ['gw-1'] },
  { expression: ' gw-a , gw-b ', expands: ['gw-a', 'gw-b'] },
  { expression: 'gw-{8..11}', expands: ['gw-8', 'gw-9', 'gw-10', 'gw-11'] },
  { expression: 'gw-{08..11}', expands: ['gw-08', 'gw-09', 'gw-10', 'gw-11'] },
  { expression: 'gw-{1..2}-{a..b}', error: 'non-numeric range' },
  { expression: 'gw-{1..2}x{0..1}', expands: ['gw-1x0', 'gw-1x1', 'gw-2x0', 'gw-2x1'] },
  { expression: 'gw-{3..1}', error: 'range written high to low' },
  { expression: 'gw-{1..3', error: 'unbalanced brace' },
  { expression: 'gw-1,gw-{1..2}', error: 'gateway listed twice' },
  { expression: '', error: 'empty pool' },
  { expression: 'g{1..3}', error: 'an ID IoT Core refuses (too short)' },
  { expression: 'gw-{0..10000}', error: 'more than 10,000 gateways' },
];

function build(): unknown {
  const pools = Object.fromEntries(Object.entries(POOLS).map(([name, expr]) => [name, parseGatewayIds(expr)]));
  const cases = [];
  for (const [pool, ids] of Object.entries(pools)) {
    for (const deviceId of DEVICES) cases.push({ pool, deviceId, gateway: gatewayFor(deviceId, ids) });
  }
  const scores = [
    { gatewayId: 'gw-1', deviceId: 'pump-0001' },
    { gatewayId: 'gw-2', deviceId: 'pump-0001' },
    { gatewayId: 'gw-000', deviceId: 'sensor-9999' },
  ].map((s) => ({ ...s, text: `${s.gatewayId}/${s.deviceId}`, score: assignmentScore(s.gatewayId, s.deviceId) }));
  return {
    $comment:
      'Device-to-gateway assignment vectors (lib/gateway-pool.ts, docs/ingest.md). Rule: for each gateway g of the ' +
      'pool, score = lowercase hex SHA-256 of the UTF-8 text "<g>/<deviceId>"; the gateway with the greatest score ' +
      'carries the device. The order of the pool does not matter. Regenerate with: npx tsx scripts/gateway-vectors.ts',
    scores,
    pools,
    cases,
    poolExpressions: EXPRESSIONS,
  };
}

const text = `${JSON.stringify(build(), null, 2)}\n`;
if (process.argv.includes('--check')) {
  const current = readFileSync(FILE, 'utf8');
  if (current !== text) {
    process.stderr.write(`${FILE} is out of date: run npx tsx scripts/gateway-vectors.ts\n`);
    process.exit(1);
  }
} else {
  writeFileSync(FILE, text);
  process.stdout.write(`wrote ${FILE}\n`);
}
