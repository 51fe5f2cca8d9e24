import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { RelayError } from '../../lib/errors.js';
import { assignmentFor, assignmentScore, gatewayFor, GatewayAssignment, MAX_POOL_SIZE, parseGatewayIds } from '../../lib/gateway-pool.js';

interface Vectors {
  scores: { gatewayId: string; deviceId: string; text: string; score: string }[];
  pools: Record<string, string[]>;
  cases: { pool: string; deviceId: string; gateway: string }[];
  poolExpressions: { expression: string; expands?: string[]; error?: string }[];
}

const root = fileURLToPath(new URL('../../', import.meta.url));
const vectorsText = readFileSync(`${root}schema/gateway-assignment-vectors.json`, 'utf8');
const vectors = JSON.parse(vectorsText) as Vectors;
const ingestDoc = readFileSync(`${root}docs/ingest.md`, 'utf8');

const devices = (n: number, prefix = 'dev'): string[] => Array.from({ length: n }, (_, i) => `${prefix}-${i}`);

/** The code block that follows `<!-- gateway-for:<lang> -->` in docs/ingest.md. */
function docSnippet(lang: 'js' | 'python'): string {
  const marker = `<!-- gateway-for:${lang} -->`;
  const at = ingestDoc.indexOf(marker);
  expect(at, `${marker} in docs/ingest.md`).toBeGreaterThanOrEqual(0);
  const block = /```[a-z]*\n([\s\S]*?)```/.exec(ingestDoc.slice(at));
  expect(block).not.toBeNull();
  return block![1]!;
}

function errorOf(fn: () => unknown): RelayError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(RelayError);
    return e as RelayError;
  }
  throw new Error('expected a RelayError');
}

describe('gatewayFor: the vectors', () => {
  it('scores as the rule says: hex SHA-256 of "<gateway>/<device>"', () => {
    for (const s of vectors.scores) {
      expect(s.text).toBe(`${s.gatewayId}/${s.deviceId}`);
      expect(assignmentScore(s.gatewayId, s.deviceId)).toBe(s.score);
    }
  });

  it('assigns every case of schema/gateway-assignment-vectors.json as written there', () => {
    expect(vectors.cases.length).toBeGreaterThanOrEqual(50);
    for (const c of vectors.cases) expect(gatewayFor(c.deviceId, vectors.pools[c.pool]!), `${c.pool} ${c.deviceId}`).toBe(c.gateway);
  });

  it('expands or refuses every pool expression of the vectors', () => {
    for (const e of vectors.poolExpressions) {
      if (e.expands !== undefined) expect(parseGatewayIds(e.expression), e.expression).toEqual(e.expands);
      else expect(() => parseGatewayIds(e.expression), e.expression).toThrow(RelayError);
    }
  });

  it('the vectors file is what the rule gives (scripts/gateway-vectors.ts --check)', async () => {
    const result = await new Promise<{ code: number; stderr: string }>((resolve) => {
      execFile('npx', ['tsx', 'scripts/gateway-vectors.ts', '--check'], { cwd: root }, (error, _out, stderr) => {
        resolve({ code: error === null ? 0 : Number(error.code ?? 1), stderr });
      });
    });
    expect(result.stderr).toBe('');
    expect(result.code).toBe(0);
  });

  it("docs/ingest.md's JavaScript version passes every case", async () => {
    const source = docSnippet('js').replace("import { createHash } from 'node:crypto';", '');
    const { createHash } = await import('node:crypto');
    const fn = new Function('createHash', `${source}\nreturn gatewayFor;`)(createHash) as (d: string, p: string[]) => string;
    for (const c of vectors.cases) expect(fn(c.deviceId, vectors.pools[c.pool]!), `${c.pool} ${c.deviceId}`).toBe(c.gateway);
  });

  it("docs/ingest.md's Python version passes every case (python3, hashlib)", async () => {
    const program = `${docSnippet('python')}
import json, sys
v = json.load(sys.stdin)
bad = [c for c in v["cases"] if gateway_for(c["deviceId"], v["pools"][c["pool"]]) != c["gateway"]]
bad += [s for s in v["scores"] if hashlib.sha256(s["text"].encode("utf-8")).hexdigest() != s["score"]]
print(json.dumps({"checked": len(v["cases"]) + len(v["scores"]), "bad": bad}))
`;
    const out = await new Promise<string>((resolve, reject) => {
      const child = execFile('python3', ['-c', program], (error, stdout, stderr) => {
        if (error) reject(new Error(`python3 failed: ${stderr || error.message}`));
        else resolve(stdout);
      });
      child.stdin!.end(vectorsText);
    });
    const result = JSON.parse(out) as { checked: number; bad: unknown[] };
    expect(result.bad).toEqual([]);
    expect(result.checked).toBe(vectors.cases.length + vectors.scores.length);
  });
});

describe('gatewayFor: the properties of rendezvous hashing', () => {
  const fleet = devices(20_000);

  it('does not depend on the order of the pool', () => {
    const pool = parseGatewayIds('gw-{00..15}');
    const reversed = [...pool].reverse();
    for (const d of fleet.slice(0, 2000)) expect(gatewayFor(d, reversed)).toBe(gatewayFor(d, pool));
  });

  it.each([1, 3, 10, 100])('going from %i to N+1 gateways moves at most 1/(N+1) + 1 percent of devices, each to the newcomer', (n) => {
    const pool = Array.from({ length: n }, (_, i) => `gw-${i}`);
    const grown = [...pool, 'gw-new'];
    let moved = 0;
    for (const d of fleet) {
      const before = gatewayFor(d, pool);
      const after = gatewayFor(d, grown);
      if (before !== after) {
        moved++;
        expect(after).toBe('gw-new');
      }
    }
    expect(moved / fleet.length).toBeLessThanOrEqual(1 / (n + 1) + 0.01);
    // And the newcomer gets its share: not a rule that moves nothing.
    expect(moved / fleet.length).toBeGreaterThanOrEqual(1 / (n + 1) - 0.01);
  });

  it('removing a gateway moves only the devices it carried', () => {
    const pool = parseGatewayIds('gw-{01..20}');
    const without = pool.filter((g) => g !== 'gw-07');
    let carried = 0;
    for (const d of fleet) {
      const before = gatewayFor(d, pool);
      if (before === 'gw-07') carried++;
      else expect(gatewayFor(d, without)).toBe(before);
    }
    expect(carried).toBeGreaterThan(0);
  });

  it('spreads devices evenly: every gateway within 15 % of its share', () => {
    const pool = parseGatewayIds('gw-{01..20}');
    const counts = new Map<string, number>();
    for (const d of fleet) counts.set(gatewayFor(d, pool), (counts.get(gatewayFor(d, pool)) ?? 0) + 1);
    expect(counts.size).toBe(20);
    for (const c of counts.values()) expect(Math.abs(c - fleet.length / 20)).toBeLessThan(0.15 * (fleet.length / 20));
  });

  it('with one gateway, that gateway; with none, ERR_CONFIG', () => {
    expect(gatewayFor('pump-1', ['gw-only'])).toBe('gw-only');
    expect(errorOf(() => gatewayFor('pump-1', [])).code).toBe('ERR_CONFIG');
  });
});

describe('parseGatewayIds: the compact pool', () => {
  it('expands ranges with the written width, keeps the order written, trims items', () => {
    expect(parseGatewayIds('gw-{000..299}')).toHaveLength(300);
    expect(parseGatewayIds('gw-{000..299}')[7]).toBe('gw-007');
    expect(parseGatewayIds(' edge-a , gw-{9..11} ')).toEqual(['edge-a', 'gw-9', 'gw-10', 'gw-11']);
  });

  it.each([
    ['', 'must list at least one gateway'],
    [' , ', 'must list at least one gateway'],
    ['gw-{3..1}', 'low to high'],
    ['gw-{1..x}', 'numeric range'],
    ['gw-{1..3', 'numeric range'],
    ['gw-1}', 'numeric range'],
    ['gw-1,gw-{1..2}', 'gw-1 twice'],
    ['g{1..3}', 'must be 3 to 255 characters'],
    ['gw/{1..2}', 'must start with a letter and contain only'],
    ['goog-{1..2}', 'must not start with "goog"'],
    ['gw+{1..2}', "its '+' is an MQTT wildcard"],
    [`gw-{0..${MAX_POOL_SIZE}}`, `more than ${MAX_POOL_SIZE}`],
    ['gw-{0..99}-{0..999}', `more than ${MAX_POOL_SIZE}`],
    ['gw-{0000000..1}', 'at most 6 digits'],
  ])('refuses %j with ERR_CONFIG naming the variable and the fault', (value, why) => {
    const e = errorOf(() => parseGatewayIds(value));
    expect(e.code).toBe('ERR_CONFIG');
    expect(e.field).toBe('IOTCORE_GATEWAY_IDS');
    expect(e.message).toContain('IOTCORE_GATEWAY_IDS');
    expect(e.message).toContain(why);
  });

  it('names another setting when asked to', () => {
    expect(errorOf(() => parseGatewayIds('', '--pool')).message).toMatch(/^--pool /);
  });
});

describe('GatewayAssignment', () => {
  it('answers as gatewayFor, and keeps at most its limit of answers', () => {
    const pool = parseGatewayIds('gw-{1..9}');
    const assignment = new GatewayAssignment(pool, 100);
    for (const d of devices(500)) expect(assignment.gatewayFor(d)).toBe(gatewayFor(d, pool));
    for (const d of devices(500)) expect(assignment.gatewayFor(d)).toBe(gatewayFor(d, pool));
    expect(assignment.pool).toEqual(pool);
  });

  it('refuses an empty pool', () => {
    expect(errorOf(() => new GatewayAssignment([])).code).toBe('ERR_CONFIG');
  });
});

describe('assignmentFor', () => {
  it('hands out the same remembering assignment for the same pool, and a new one for another pool', () => {
    const a = assignmentFor(['gw-1', 'gw-2']);
    expect(assignmentFor(['gw-1', 'gw-2'])).toBe(a);
    const b = assignmentFor(['gw-1', 'gw-3']);
    expect(b).not.toBe(a);
    expect(b.gatewayFor('pump-7')).toBe(gatewayFor('pump-7', ['gw-1', 'gw-3']));
  });
});
