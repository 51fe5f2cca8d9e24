/**
 * The `iotcore-relay` command line. Each subcommand lives in its own module and is loaded only when used, so
 * `iotcore-relay keys` does not pay for starting an MQTT broker.
 *
 * @example
 * iotcore-relay --version     # iotcore-relay 0.1.0, from package.json (also -V)
 * iotcore-relay send --help
 */
import { createRequire } from 'node:module';

type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  emulator: {
    summary: 'run the local emulator of the ClearBlade IoT Core MQTT bridge',
    load: async () => (await import('./emulator-command.js')).emulatorCommand,
  },
  fleet: {
    summary: 'bring a ClearBlade registry in line with the gateway pool: plan, gateways, apply',
    load: async () => (await import('./fleet-command.js')).fleetCommand,
  },
  keys: {
    summary: 'generate an RS256 or ES256 key pair and print the public key to register',
    load: async () => (await import('./keys-command.js')).keysCommand,
  },
  send: {
    summary: 'post test telemetry to an ingest URL as a device would',
    load: async () => (await import('./send-command.js')).sendCommand,
  },
  dlq: {
    summary: 'list the dead-letter queue with reasons, or replay it into the relay queue',
    load: async () => (await import('./dlq-command.js')).dlqCommand,
  },
};

export function usage(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(10)} ${c.summary}`);
  return (
    `usage: iotcore-relay <command> [options]\n       iotcore-relay --version\n\ncommands:\n${lines.join('\n')}\n\n` +
    "Run 'iotcore-relay <command> --help' for a command's options."
  );
}

/** The version in package.json, which is what a release is tagged and published with. */
export function version(): string {
  return (createRequire(import.meta.url)('../package.json') as { version: string }).version;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (name === '--version' || name === '-V') {
    process.stdout.write(`iotcore-relay ${version()}\n`);
    return 0;
  }
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(`${usage()}\n`);
    return name === undefined ? 2 : 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    process.stderr.write(`iotcore-relay: unknown command '${name}'\n\n${usage()}\n`);
    return 2;
  }
  try {
    return await (await command.load())(rest);
  } catch (e) {
    process.stderr.write(`iotcore-relay ${name}: ${(e as Error).message}\n`);
    return 1;
  }
}
