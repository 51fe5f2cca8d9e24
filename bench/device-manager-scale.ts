/**
 * The emulator's ClearBlade REST form at fleet scale, over real HTTP: creates G gateways and N devices, binds every
 * device to a gateway (round robin), then lists every gateway's bound devices and the whole registry page by page
 * (500 a page), with C calls in flight. It prints calls per second for each phase, the total time, and the
 * latency of the first and last pages of the registry walk: a list that scanned or sorted the registry per page
 * would show the late pages slower than the early ones.
 *
 * The emulator runs in a child process (`iotcore-relay emulator --no-tls`), so client and server do not share an
 * event loop. Everything is local and thrown away at the end; progress goes to stderr every few seconds.
 *
 *   npx tsx bench/device-manager-scale.ts                                  100,000 devices, 100 gateways, 32 in flight
 *   npx tsx bench/device-manager-scale.ts --devices 5000 --gateways 10 --concurrency 8
 *
 * @example
 * npx tsx bench/device-manager-scale.ts --devices 100000 --gateways 100 --concurrency 32
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    devices: { type: 'string', default: '100000' },
    gateways: { type: 'string', default: '100' },
    concurrency: { type: 'string', default: '32' },
  },
});
const DEVICES = Number(values.devices);
const GATEWAYS = Number(values.gateways);
const CONCURRENCY = Number(values.concurrency);
for (const [name, n] of [['devices', DEVICES], ['gateways', GATEWAYS], ['concurrency', CONCURRENCY]] as const) {
  if (!Number.isSafeInteger(n) || n < 1) throw new Error(`--${name} must be a positive integer`);
}
if (DEVICES / GATEWAYS > 10_000) throw new Error('more than 10,000 devices per gateway: raise --gateways');

const PROJECT = 'scale-project';
const LOCATION = 'us-central1';
const REGISTRY = 'scale-registry';
const PAGE = 500;

const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });

interface Answer {
  status: number;
  body: any;
}

function call(url: string, method: string, token: string, body?: unknown): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = request(url, { method, agent, headers: { 'ClearBlade-UserToken': token, ...(payload ? { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) } : {}) } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, body: text === '' ? undefined : JSON.parse(text) });
      });
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(payload);
  });
}

function expectOk(answer: Answer, what: string): void {
  if (answer.status < 200 || answer.status > 299) throw new Error(`${what}: HTTP ${answer.status} ${JSON.stringify(answer.body)}`);
}

/** Runs `work(i)` for i in [0, count) with CONCURRENCY in flight, reporting progress; returns the seconds taken. */
async function phase(name: string, count: number, work: (i: number) => Promise<void>): Promise<number> {
  const started = performance.now();
  let next = 0;
  let done = 0;
  const progress = setInterval(() => {
    const s = (performance.now() - started) / 1000;
    process.stderr.write(`  ${name}: ${done}/${count} (${Math.round(done / s)}/s)\n`);
  }, 5_000);
  try {
    await Promise.all(
      Array.from({ length: Math.min(CONCURRENCY, count) }, async () => {
        while (next < count) {
          await work(next++);
          done += 1;
        }
      }),
    );
  } finally {
    clearInterval(progress);
  }
  return (performance.now() - started) / 1000;
}

const root = fileURLToPath(new URL('../', import.meta.url));
const dir = await mkdtemp(join(tmpdir(), 'device-manager-scale-'));
const registryFile = join(dir, 'registry.json');
const accountFile = join(dir, 'service-account.json');
await writeFile(registryFile, JSON.stringify({ project: PROJECT, location: LOCATION, registries: [{ id: REGISTRY }] }));
const child = spawn(process.execPath, [join(root, 'bin/iotcore-relay.mjs'), 'emulator', '--no-tls', '--port', '0', '--registry', registryFile, '--service-account-out', accountFile, '--quiet'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
try {
  await new Promise<string>((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', resolve);
    child.once('exit', (code) => reject(new Error(`the emulator exited (${code}) before it was ready`)));
  });
  const account = JSON.parse(await readFile(accountFile, 'utf8')) as { systemKey: string; token: string; url: string; project: string };
  const credsAnswer = await call(`${account.url}/api/v/1/code/${account.systemKey}/getRegistryCredentials`, 'POST', account.token, {
    project: PROJECT,
    region: LOCATION,
    registry: REGISTRY,
  });
  expectOk(credsAnswer, 'getRegistryCredentials');
  const creds = credsAnswer.body as { systemKey: string; serviceAccountToken: string; url: string };
  const base = `${creds.url}/api/v/4/webhook/execute/${creds.systemKey}`;
  const token = creds.serviceAccountToken;
  const gatewayId = (g: number): string => `gw-${String(g).padStart(4, '0')}`;
  const deviceId = (d: number): string => `dev-${String(d).padStart(7, '0')}`;

  process.stderr.write(`device-manager scale: ${DEVICES} devices, ${GATEWAYS} gateways, ${CONCURRENCY} in flight, emulator at ${creds.url}\n`);
  const total = performance.now();
  const results: { phase: string; calls: number; seconds: number }[] = [];
  const record = (name: string, calls: number, seconds: number): void => {
    results.push({ phase: name, calls, seconds });
    process.stderr.write(`  ${name}: ${calls} calls in ${seconds.toFixed(1)} s (${Math.round(calls / seconds)}/s)\n`);
  };

  record('create gateways', GATEWAYS, await phase('create gateways', GATEWAYS, async (g) => {
    expectOk(await call(`${base}/cloudiot_devices`, 'POST', token, { id: gatewayId(g), gatewayConfig: { gatewayType: 'GATEWAY', gatewayAuthMethod: 'ASSOCIATION_ONLY' } }), `create ${gatewayId(g)}`);
  }));
  record('create devices', DEVICES, await phase('create devices', DEVICES, async (d) => {
    expectOk(await call(`${base}/cloudiot_devices`, 'POST', token, { id: deviceId(d) }), `create ${deviceId(d)}`);
  }));
  record('bind', DEVICES, await phase('bind', DEVICES, async (d) => {
    expectOk(await call(`${base}/cloudiot?method=bindDeviceToGateway`, 'POST', token, { gatewayId: gatewayId(d % GATEWAYS), deviceId: deviceId(d) }), `bind ${deviceId(d)}`);
  }));

  // Every binding, gateway by gateway, page by page (each gateway's walk is sequential; gateways in parallel).
  let bound = 0;
  let boundPages = 0;
  const bindingsSeconds = await phase('list bindings (gateways)', GATEWAYS, async (g) => {
    let pageToken: string | undefined;
    do {
      const answer = await call(`${base}/cloudiot_devices?gatewayListOptions.associationsGatewayId=${gatewayId(g)}&pageSize=${PAGE}${pageToken ? `&pageToken=${pageToken}` : ''}`, 'GET', token);
      expectOk(answer, `list ${gatewayId(g)}`);
      bound += (answer.body.devices as unknown[]).length;
      boundPages += 1;
      pageToken = answer.body.nextPageToken;
    } while (pageToken);
  });
  record('list bindings', boundPages, bindingsSeconds);
  if (bound !== DEVICES) throw new Error(`listed ${bound} bindings, expected ${DEVICES}`);

  // The whole registry, one page after the other, timing each page.
  const pageMs: number[] = [];
  let listed = 0;
  let pageToken: string | undefined;
  const walkStarted = performance.now();
  do {
    const t = performance.now();
    const answer = await call(`${base}/cloudiot_devices?pageSize=${PAGE}${pageToken ? `&pageToken=${pageToken}` : ''}`, 'GET', token);
    pageMs.push(performance.now() - t);
    expectOk(answer, 'list devices');
    listed += (answer.body.devices as unknown[]).length;
    pageToken = answer.body.nextPageToken;
  } while (pageToken);
  record('list registry (one page at a time)', pageMs.length, (performance.now() - walkStarted) / 1000);
  if (listed !== DEVICES + GATEWAYS) throw new Error(`listed ${listed} devices, expected ${DEVICES + GATEWAYS}`);

  const totalSeconds = (performance.now() - total) / 1000;
  const avg = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  const tenth = Math.max(1, Math.floor(pageMs.length / 10));
  console.log(`| phase | calls | seconds | calls/s |`);
  console.log(`|---|---:|---:|---:|`);
  for (const r of results) console.log(`| ${r.phase} | ${r.calls} | ${r.seconds.toFixed(1)} | ${Math.round(r.calls / r.seconds)} |`);
  console.log(`| total | ${results.reduce((a, r) => a + r.calls, 0)} | ${totalSeconds.toFixed(1)} | |`);
  console.log('');
  console.log(`registry walk: ${pageMs.length} pages of ${PAGE}; mean page ${avg(pageMs).toFixed(1)} ms, first tenth ${avg(pageMs.slice(0, tenth)).toFixed(1)} ms, last tenth ${avg(pageMs.slice(-tenth)).toFixed(1)} ms`);
} finally {
  child.kill('SIGTERM');
  await exited;
  agent.destroy();
  await rm(dir, { recursive: true, force: true });
}
