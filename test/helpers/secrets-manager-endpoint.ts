/**
 * A local Secrets Manager endpoint for tests: an HTTP server on 127.0.0.1 that speaks the service's JSON protocol
 * (`POST /`, `X-Amz-Target: secretsmanager.GetSecretValue`, `Content-Type: application/x-amz-json-1.1`), so the
 * real `SecretsManagerClient` runs unmodified against it, signing and error parsing included.
 * It counts GetSecretValue calls per requested secret ID, and can be told to throttle or fail.
 *
 * @example
 * const sm = await startSecretsManagerEndpoint();
 * sm.putSecret('gw-keys', pem);
 * const source = new SecretsManagerKeySource({ secretId: 'gw-keys', client: sm.client() });
 * expect(sm.calls('gw-keys')).toBe(1);
 * await sm.close();
 */
import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SecretsManagerClient, type SecretsManagerClientConfig } from '@aws-sdk/client-secrets-manager';

export const LOCAL_REGION = 'us-east-1';
const ACCOUNT = '000000000000';

/** A failure every GetSecretValue answers with until cleared: an error body, or a dropped connection. */
export type EndpointFailure = { type: string; status?: number; message?: string } | { dropConnection: true };

export interface SecretsManagerEndpoint {
  /** `http://127.0.0.1:<port>`, for the client's `endpoint`. */
  readonly url: string;
  /** Creates the secret, or stores a new version of it (a new VersionId). Returns its ARN. */
  putSecret(name: string, value: string | Uint8Array): string;
  deleteSecret(name: string): void;
  /** GetSecretValue calls received for this SecretId (as the client sent it, name or ARN), failed ones included. */
  calls(secretId: string): number;
  totalCalls(): number;
  /** Answer every GetSecretValue with ThrottlingException (HTTP 400), until `throttle(false)`. */
  throttle(on?: boolean): void;
  /** Answer every GetSecretValue with this failure, until `fail(undefined)`. */
  fail(failure: EndpointFailure | undefined): void;
  /** A real SDK client pointed at this endpoint, with fake static credentials and no retries unless asked. */
  client(config?: Partial<SecretsManagerClientConfig>): SecretsManagerClient;
  close(): Promise<void>;
}

interface StoredSecret {
  name: string;
  arn: string;
  versionId: string;
  createdDate: number;
  value: string | Uint8Array;
}

export async function startSecretsManagerEndpoint(): Promise<SecretsManagerEndpoint> {
  const secrets = new Map<string, StoredSecret>();
  const counts = new Map<string, number>();
  const clients: SecretsManagerClient[] = [];
  let failure: EndpointFailure | undefined;

  const find = (id: string): StoredSecret | undefined =>
    secrets.get(id) ?? [...secrets.values()].find((s) => s.arn === id);

  const server = createServer((req, res) => {
    void handle(req, res).catch(() => reply(res, 500, { __type: 'InternalServiceError', message: 'endpoint failure' }));
  });

  async function handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const body = await readBody(req);
    const target = req.headers['x-amz-target'];
    if (req.method !== 'POST' || req.url !== '/' || req.headers['content-type'] !== 'application/x-amz-json-1.1') {
      reply(res, 400, { __type: 'SerializationException', message: 'expected POST / with application/x-amz-json-1.1' });
      return;
    }
    if (!String(req.headers['authorization'] ?? '').startsWith('AWS4-HMAC-SHA256 ')) {
      reply(res, 400, { __type: 'MissingAuthenticationTokenException', message: 'request is not signed' });
      return;
    }
    if (target !== 'secretsmanager.GetSecretValue') {
      reply(res, 400, { __type: 'UnknownOperationException', message: `operation ${String(target)} is not served here` });
      return;
    }
    let input: { SecretId?: unknown };
    try {
      input = JSON.parse(body) as { SecretId?: unknown };
    } catch {
      reply(res, 400, { __type: 'SerializationException', message: 'body is not JSON' });
      return;
    }
    if (typeof input.SecretId !== 'string' || input.SecretId === '') {
      reply(res, 400, { __type: 'InvalidParameterException', message: 'SecretId is required' });
      return;
    }
    counts.set(input.SecretId, (counts.get(input.SecretId) ?? 0) + 1);

    if (failure !== undefined) {
      if ('dropConnection' in failure) {
        req.socket.destroy();
        return;
      }
      reply(res, failure.status ?? 400, { __type: failure.type, message: failure.message ?? `${failure.type} (injected)` });
      return;
    }
    const secret = find(input.SecretId);
    if (secret === undefined) {
      reply(res, 400, { __type: 'ResourceNotFoundException', message: "Secrets Manager can't find the specified secret." });
      return;
    }
    reply(res, 200, {
      ARN: secret.arn,
      Name: secret.name,
      VersionId: secret.versionId,
      VersionStages: ['AWSCURRENT'],
      CreatedDate: secret.createdDate,
      ...(typeof secret.value === 'string'
        ? { SecretString: secret.value }
        : { SecretBinary: Buffer.from(secret.value).toString('base64') }),
    });
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;

  return {
    url,
    putSecret(name, value) {
      const existing = secrets.get(name);
      // Real ARNs end in a dash and six random characters, so an ARN never equals the name.
      const arn = existing?.arn ?? `arn:aws:secretsmanager:${LOCAL_REGION}:${ACCOUNT}:secret:${name}-${randomUUID().slice(0, 6)}`;
      secrets.set(name, { name, arn, versionId: randomUUID(), createdDate: Math.floor(Date.now() / 1000), value });
      return arn;
    },
    deleteSecret(name) {
      secrets.delete(name);
    },
    calls: (secretId) => counts.get(secretId) ?? 0,
    totalCalls: () => [...counts.values()].reduce((a, b) => a + b, 0),
    throttle(on = true) {
      failure = on ? { type: 'ThrottlingException', status: 400, message: 'Rate exceeded' } : undefined;
    },
    fail(next) {
      failure = next;
    },
    client(config = {}) {
      const client = new SecretsManagerClient({
        endpoint: url,
        region: LOCAL_REGION,
        credentials: { accessKeyId: 'AKIDLOCALTEST', secretAccessKey: 'local-test-secret' },
        // One attempt, so call counts are exact and failures fast; a test can ask for the SDK's retries.
        maxAttempts: 1,
        ...config,
      });
      clients.push(client);
      return client;
    },
    async close() {
      for (const client of clients) client.destroy();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function reply(res: ServerResponse, status: number, body: object): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'Content-Type': 'application/x-amz-json-1.1',
    'Content-Length': Buffer.byteLength(text),
    'x-amzn-RequestId': randomUUID(),
  });
  res.end(text);
}

async function readBody(req: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}
