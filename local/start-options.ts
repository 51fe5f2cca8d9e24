/**
 * The command line of `npm start` (`npm start -- --simulate 5`), read into stack options.
 *
 * @example
 * parseStartArgs(['--simulate', '5', '--free-ports']);
 * // { options: { simulate: 5, ports: 'free' }, json: false, quiet: false }
 */
import { parseArgs } from 'node:util';
import { parseGatewayIds } from '../lib/gateway-pool.js';
import type { StackOptions, StackPorts } from './stack.js';

export interface StartCommand {
  options: Omit<StackOptions, 'log'>;
  /** One JSON line with the URLs when ready, instead of the banner. */
  json: boolean;
  /** No line per relay batch or poll. */
  quiet: boolean;
}

export const START_USAGE = `usage: npm start -- [options]

Starts the whole relay on 127.0.0.1: the bridge emulator, SQS and DynamoDB stand-ins with the resources of
serverless.yml, the HTTP API, the relay and the poller, and the dashboard.

options:
  --pool <gateways>           the gateway pool, as IOTCORE_GATEWAY_IDS (e.g. 'gw-{000..099}'; default gw-1); its
                              gateways are created at the bridge with the demo gateway's key, and
                              \`iotcore-relay fleet\` binds devices to them (docs/fleet.md)
  --simulate <n>              n simulated devices posting readings (some wrong on purpose)
  --simulate-interval <ms>    mean time between two posts of one simulated device (default 3000)
  --schedule-every <seconds>  run the scheduled functions (the config poller) this often (default 60; 0: only
                              from the dashboard's "Poll configs now")
  --http-port <p>             HTTP API (default 3000)
  --dashboard-port <p>        dashboard (default 3001)
  --mqtt-port <p>             bridge emulator, MQTT over TLS (default 8883)
  --admin-port <p>            bridge emulator, admin REST API (default 8080)
  --sqs-port <p>              SQS stand-in (default 9324)
  --dynamodb-port <p>         DynamoDB stand-in (default 8000)
  --free-ports                pick free ports for everything (ports given above still apply)
  --param <name=value>        a serverless.yml parameter, as the framework's --param (repeatable), e.g.
                              --param pollDeviceIds=pump-0001,pump-0002
  --data-dir <dir>            keys, secrets and the emulator's CA (default .local/)
  --log-level <level>         log level of the handlers: DEBUG, INFO, WARN (default; ERROR with --simulate) or ERROR
  --json                      print one JSON line with the URLs when ready, instead of the banner
  --quiet                     no line per relay batch or poll
  -h, --help                  this text
`;

const PORT_FLAGS: Record<string, keyof StackPorts> = {
  'http-port': 'http',
  'dashboard-port': 'dashboard',
  'mqtt-port': 'mqtt',
  'admin-port': 'admin',
  'sqs-port': 'sqs',
  'dynamodb-port': 'dynamodb',
};
const LOG_LEVELS = ['DEBUG', 'INFO', 'WARN', 'ERROR', 'SILENT', 'CRITICAL'];

export function parseStartArgs(argv: readonly string[]): StartCommand | { help: true } | { error: string } {
  let values: Record<string, string | boolean | string[] | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        pool: { type: 'string' },
        simulate: { type: 'string' },
        'simulate-interval': { type: 'string' },
        'schedule-every': { type: 'string' },
        ...Object.fromEntries(Object.keys(PORT_FLAGS).map((f) => [f, { type: 'string' as const }])),
        'free-ports': { type: 'boolean' },
        'data-dir': { type: 'string' },
        param: { type: 'string', multiple: true },
        'log-level': { type: 'string' },
        json: { type: 'boolean' },
        quiet: { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (e) {
    return { error: (e as Error).message };
  }
  if (values.help === true) return { help: true };

  const options: StartCommand['options'] = {};
  const whole = (flag: string, min: number, max: number): number | undefined | { error: string } => {
    const raw = values[flag];
    if (raw === undefined) return undefined;
    const n = Number(raw);
    if (typeof raw !== 'string' || !/^\d+$/.test(raw) || n < min || n > max) return { error: `--${flag} must be a whole number from ${min} to ${max} (got ${String(raw)})` };
    return n;
  };
  const simulate = whole('simulate', 0, 1000);
  const interval = whole('simulate-interval', 100, 3_600_000);
  const every = whole('schedule-every', 0, 86_400);
  for (const v of [simulate, interval, every]) if (typeof v === 'object') return v;
  if (simulate !== undefined) options.simulate = simulate as number;
  if (interval !== undefined) options.simulateIntervalMs = interval as number;
  if (every !== undefined) options.scheduleEverySeconds = every as number;

  const ports: Partial<StackPorts> = values['free-ports'] === true ? { http: 0, dashboard: 0, mqtt: 0, admin: 0, sqs: 0, dynamodb: 0 } : {};
  for (const [flag, key] of Object.entries(PORT_FLAGS)) {
    const port = whole(flag, 0, 65535);
    if (typeof port === 'object') return port;
    if (port !== undefined) ports[key] = port;
  }
  if (Object.keys(ports).length > 0) options.ports = ports;

  if (typeof values.pool === 'string') {
    try {
      options.gatewayIds = parseGatewayIds(values.pool, '--pool');
    } catch (e) {
      return { error: (e as Error).message };
    }
  }
  if (typeof values['data-dir'] === 'string') options.dataDir = values['data-dir'];
  if (Array.isArray(values.param)) {
    const params: Record<string, string> = {};
    for (const p of values.param) {
      const eq = p.indexOf('=');
      if (eq <= 0) return { error: `--param must be name=value (got ${p})` };
      params[p.slice(0, eq)] = p.slice(eq + 1);
    }
    options.params = params;
  }
  if (typeof values['log-level'] === 'string') {
    const level = values['log-level'].toUpperCase();
    if (!LOG_LEVELS.includes(level)) return { error: `--log-level must be one of ${LOG_LEVELS.join(', ')}` };
    options.handlerLogLevel = level;
  }
  return { options, json: values.json === true, quiet: values.quiet === true };
}
