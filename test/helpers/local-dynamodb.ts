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
import { CreateTableCommand, type DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { configTableDefinition } from '../../lib/config-store/table.js';
import { startDynamoDbServer } from '../../local/dynamodb-server.js';
import { LOCAL_CREDENTIALS } from '../../local/sqs-server.js';

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

/** The local stack's own server (local/dynamodb-server.ts), with the table shape the config store defines. */
export async function startLocalDynamoDb(options: LocalDynamoDbOptions = {}): Promise<LocalDynamoDb> {
  const tableName = options.tableName ?? 'config';
  const server = await startDynamoDbServer({ tables: [{ logicalId: 'ConfigTable', input: configTableDefinition(tableName), ignored: [] }] });
  return {
    endpoint: server.endpoint,
    tableName,
    client: server.client,
    env: {
      AWS_ENDPOINT_URL_DYNAMODB: server.endpoint,
      AWS_REGION: server.region,
      AWS_ACCESS_KEY_ID: LOCAL_CREDENTIALS.accessKeyId,
      AWS_SECRET_ACCESS_KEY: LOCAL_CREDENTIALS.secretAccessKey,
      CONFIG_TABLE: tableName,
    },
    createConfigTable: async (name) => {
      await server.client.send(new CreateTableCommand(configTableDefinition(name)));
    },
    stop: () => server.close(),
  };
}
