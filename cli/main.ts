/**
 * The `iotcore-relay` command line. Each subcommand lives in its own module and is loaded only when used, so
 * `iotcore-relay keys` does not pay for starting an MQTT broker.
 */
type Command = (argv: string[]) => Promise<number>;

const COMMANDS: Record<string, { summary: string; load: () => Promise<Command> }> = {
  emulator: {
    summary: 'run the local emulator of the ClearBlade IoT Core MQTT bridge',
    load: async () => (await import('./emulator-command.js')).emulatorCommand,
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
  return `usage: iotcore-relay <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun 'iotcore-relay <command> --help' for a command's options.`;
}

export async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
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
