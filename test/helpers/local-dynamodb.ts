/**
 * A DynamoDB-compatible server (dynalite) in this process, on 127.0.0.1 and a free port, in memory, with the
 * config table created. Tests either pass `client` to the code under test or apply `env` so the SDK's default
 * client finds the server (`AWS_ENDPOINT_URL_DYNAMODB`).
 *
 * @example
 * const db = await startLocalDynamoDb();
 * const store = new ConfigStore({ tableName: db.tableName, client: db.client });
 * afterAll(() => db.stop());
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { configTableDefinition } from '../../lib/config-store/table.js';

type DynaliteFactory = (options: { createTableMs?: number; deleteTableMs?: number; updateTableMs?: number }) => Server;
// dynalite is CommonJS without type declarations.
const dynalite = createRequire(import.meta.url)('dynalite') as DynaliteFactory;

export interface LocalDynamoDb {
  /** `http://127.0.0.1:<port>` */
  endpoint: string;
  /** The config table, created and ACTIVE. */
  tableName: string;
  /** A client on the local server with throwaway credentials. */
  client: DynamoDBClient;
  /** Environment for code that builds its own client and reads `CONFIG_TABLE`. */
  env: Record<'AWS_ENDPOINT_URL_DYNAMODB' | 'AWS_REGION' | 'AWS_ACCESS_KEY_ID' | 'AWS_SECRET_ACCESS_KEY' | 'CONFIG_TABLE', string>;
  /** Creates another table with the config table's shape (for tests that want a clean one). */
  createConfigTable(name: string): Promise<void>;
  stop(): Promise<void>;
}

export interface LocalDynamoDbOptions {
  /** Default `config`. */
  tableName?: string;
}

const REGION = 'us-east-1';
const CREDENTIALS = { accessKeyId: 'local', secretAccessKey: 'local' };

export async function startLocalDynamoDb(options: LocalDynamoDbOptions = {}): Promise<LocalDynamoDb> {
  // Tables become ACTIVE at once instead of after dynalite's default 500 ms.
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  const { port } = server.address() as AddressInfo;
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new DynamoDBClient({ endpoint, region: REGION, credentials: CREDENTIALS });
  const tableName = options.tableName ?? 'config';

  const createConfigTable = async (name: string): Promise<void> => {
    await client.send(new CreateTableCommand(configTableDefinition(name)));
  };

  try {
    await createConfigTable(tableName);
  } catch (e) {
    client.destroy();
    await closeServer(server);
    throw e;
  }

  return {
    endpoint,
    tableName,
    client,
    env: {
      AWS_ENDPOINT_URL_DYNAMODB: endpoint,
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: CREDENTIALS.secretAccessKey,
      CONFIG_TABLE: tableName,
    },
    createConfigTable,
    stop: async () => {
      client.destroy();
      await closeServer(server);
    },
  };
}

function closeServer(server: Server): Promise<void> {
  // Idle keep-alive sockets from the SDK would otherwise hold close() open.
  server.closeAllConnections?.();
  return new Promise((resolve, reject) => server.close((e) => (e ? reject(e) : resolve())));
}
