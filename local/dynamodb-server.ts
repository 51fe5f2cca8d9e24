/**
 * The DynamoDB-compatible server of the local stack (dynalite, in this process, in memory) with the tables the
 * template declares.
 *
 * @example
 * const db = await startDynamoDbServer({ tables: [tableSpec(template, 'ConfigTable')] });
 * db.endpoint; // http://127.0.0.1:<port>
 * await db.close();
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { createRequire } from 'node:module';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { closeHttpServer, listen } from './listen.js';
import { LOCAL_CREDENTIALS } from './sqs-server.js';
import type { TableSpec } from './template-resources.js';

type DynaliteFactory = (options: { createTableMs?: number; deleteTableMs?: number; updateTableMs?: number }) => Server;
// dynalite is CommonJS and ships no type declarations.
const dynalite = createRequire(import.meta.url)('dynalite') as DynaliteFactory;

export interface DynamoDbServer {
  endpoint: string;
  port: number;
  region: string;
  client: DynamoDBClient;
  /** Logical ID -> table name. */
  tableName(logicalId: string): string | undefined;
  close(): Promise<void>;
}

export interface DynamoDbServerOptions {
  tables: readonly TableSpec[];
  port?: number;
  host?: string;
  region?: string;
}

export async function startDynamoDbServer(options: DynamoDbServerOptions): Promise<DynamoDbServer> {
  const host = options.host ?? '127.0.0.1';
  const region = options.region ?? 'us-east-1';
  // Tables become ACTIVE at once rather than after dynalite's default 500 ms, as nothing waits on them here.
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  await listen(server, options.port ?? 0, host);
  const port = (server.address() as AddressInfo).port;
  const endpoint = `http://${host}:${port}`;
  const client = new DynamoDBClient({ endpoint, region, credentials: LOCAL_CREDENTIALS });
  const names = new Map<string, string>();
  try {
    for (const table of options.tables) {
      await client.send(new CreateTableCommand(table.input));
      names.set(table.logicalId, table.input.TableName!);
    }
  } catch (e) {
    client.destroy();
    await closeHttpServer(server);
    throw e;
  }
  return {
    endpoint,
    port,
    region,
    client,
    tableName: (logicalId) => names.get(logicalId),
    async close() {
      client.destroy();
      await closeHttpServer(server);
    },
  };
}
