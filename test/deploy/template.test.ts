/**
 * The deployment as CloudFormation and Lambda will receive it: `serverless package` runs once, offline and without
 * AWS credentials, into a folder of this test's own, and every property a production review would look for is
 * checked on the generated template and inside the zips. Relations are checked against their sources (the relay's
 * timeouts in lib/relay-settings.ts, the table's shape in lib/config-store/table.ts, the routes the handlers serve), so a
 * change on either side that breaks them fails here.
 */
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import type { APIGatewayProxyEventV2 } from 'aws-lambda';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createConfigHandler, type ConfigEvent } from '../../handlers/config.js';
import { loadRelaySettings } from '../../lib/relay-settings.js';
import { configTableDefinition, TTL_ATTRIBUTE } from '../../lib/config-store/table.js';
import { sizeFleet } from '../../lib/fleet/capacity.js';
import { matchRoute } from '../../lib/ingest/routes.js';
import { emittedMetrics } from './emitted-metrics.js';
import { PROJECT_ROOT, runServerless, type CliRun } from './serverless-cli.js';
import { readZip, type ZipEntry } from './zip-archive.js';

type Json = string | number | boolean | null | Json[] | { [key: string]: Json };
type JsonObject = { [key: string]: Json };
interface Resource {
  Type: string;
  Properties: JsonObject;
  DependsOn?: Json;
}
interface Template {
  Resources: Record<string, Resource>;
  Outputs: Record<string, { Value: Json }>;
  Conditions?: Record<string, Json>;
}

const FUNCTIONS = ['relay', 'ingest', 'config', 'poll', 'lorawan'] as const;
type FunctionName = (typeof FUNCTIONS)[number];
const logicalId = (fn: FunctionName): string => `${fn[0]!.toUpperCase()}${fn.slice(1)}LambdaFunction`;

/**
 * Ceilings on each bundle (the `.mjs` Node parses at every cold start; its chunks, read on demand, not counted),
 * about 15 to 20 % above the sizes measured when they were set; docs/deploy.md has the measurements and the reasoning.
 */
const BUNDLE_BUDGET_KIB: Record<FunctionName, number> = { relay: 570, ingest: 620, config: 570, poll: 560, lorawan: 620 };

/** Modules that must never reach the HTTP handlers: the MQTT client and anything of the emulator. */
const MQTT_OR_EMULATOR = /(^|\/)node_modules\/(mqtt|mqtt-packet|aedes|aedes-[^/]+)\/|(^|\/)emulator\//;

/** What lib/relay-settings.ts requires, and nothing else: every timeout and limit keeps its default. */
const MINIMAL_RELAY_ENV = {
  IOTCORE_PROJECT: 'demo-project',
  IOTCORE_LOCATION: 'us-central1',
  IOTCORE_REGISTRY: 'demo-registry',
  IOTCORE_GATEWAY_IDS: 'gw-1',
  IOTCORE_MQTT_HOST: 'bridge.example.com',
  GATEWAY_KEY_SECRET: 'any',
};

/** The stage packaged here; its registry comes from serverless.yml's params.dev. */
const STAGE = 'dev';

const timing = createRequire(import.meta.url)('../../deploy/relay-timing.cjs') as { relayTimeoutSeconds: number; queueVisibilityTimeoutSeconds: number };

describe('serverless package', () => {
  let scratch: string;
  let artifacts: string;
  let run: CliRun;
  let template: Template;
  /** The same stage packaged with `--param tracing=true`. */
  let traced: Template;

  beforeAll(async () => {
    scratch = await mkdtemp(join(tmpdir(), 'iotcore-relay-package-'));
    artifacts = join(scratch, 'artifacts');
    const tracedArtifacts = join(scratch, 'traced');
    // One after the other: both build in the project's own .esbuild folder.
    const plain = await runServerless(['package', '--stage', STAGE, '--package', artifacts], { scratchDir: scratch, timeoutMs: 110_000 });
    const withTracing = await runServerless(['package', '--stage', STAGE, '--param', 'tracing=true', '--package', tracedArtifacts], {
      scratchDir: scratch,
      timeoutMs: 110_000,
    });
    run = plain;
    if (plain.code !== 0) throw new Error(`serverless package failed\n${plain.output}`);
    if (withTracing.code !== 0) throw new Error(`serverless package --param tracing=true failed\n${withTracing.output}`);
    template = JSON.parse(await readFile(join(artifacts, 'cloudformation-template-update-stack.json'), 'utf8')) as Template;
    traced = JSON.parse(await readFile(join(tracedArtifacts, 'cloudformation-template-update-stack.json'), 'utf8')) as Template;
  }, 230_000);

  afterAll(async () => {
    if (scratch !== undefined) await rm(scratch, { recursive: true, force: true });
  });

  const resource = (id: string): Resource => {
    const r = template.Resources[id];
    if (r === undefined) throw new Error(`no resource ${id} in the template`);
    return r;
  };
  const ofType = (type: string): [string, Resource][] => Object.entries(template.Resources).filter(([, r]) => r.Type === type);
  const fn = (name: FunctionName): JsonObject => resource(logicalId(name)).Properties;

  describe('functions', () => {
    it('run on nodejs22.x, each with the handler its zip holds', () => {
      for (const name of FUNCTIONS) {
        expect(fn(name).Runtime, name).toBe('nodejs22.x');
        expect(fn(name).Handler, name).toBe(`handlers/${name}.handler`);
      }
      expect(ofType('AWS::Lambda::Function')).toHaveLength(FUNCTIONS.length);
    });

    it('give each handler the environment it reads, and no secret it does not use', () => {
      const env = (name: FunctionName): JsonObject => (fn(name).Environment as { Variables: JsonObject }).Variables;
      expect(Object.keys(env('relay'))).toEqual(
        expect.arrayContaining(['IOTCORE_PROJECT', 'IOTCORE_LOCATION', 'IOTCORE_REGISTRY', 'IOTCORE_GATEWAY_IDS', 'GATEWAY_KEY_SECRET', 'RELAY_DEAD_LETTER_QUEUE_URL', 'RELAY_QUEUE_URL']),
      );
      expect(Object.keys(env('ingest'))).toEqual(
        expect.arrayContaining(['IOTCORE_PROJECT', 'IOTCORE_LOCATION', 'IOTCORE_REGISTRY', 'IOTCORE_GATEWAY_IDS', 'RELAY_QUEUE_URL', 'DEVICE_KEYS_SECRET', 'DEVICE_KEY_MASTER_SECRET']),
      );
      expect(Object.keys(env('config'))).toEqual(expect.arrayContaining(['IOTCORE_PROJECT', 'CONFIG_TABLE', 'DEVICE_KEYS_SECRET', 'DEVICE_KEY_MASTER_SECRET']));
      expect(Object.keys(env('poll'))).toEqual(expect.arrayContaining(['IOTCORE_GATEWAY_IDS', 'RELAY_QUEUE_URL', 'CONFIG_TABLE']));
      expect(Object.keys(env('lorawan'))).toEqual(
        expect.arrayContaining(['IOTCORE_GATEWAY_IDS', 'RELAY_QUEUE_URL', 'CONFIG_TABLE', 'LORAWAN_INTEGRATIONS', 'LORAWAN_SECRETS_SECRET']),
      );
      for (const name of ['ingest', 'config', 'poll', 'lorawan'] as const) expect(env(name), name).not.toHaveProperty('GATEWAY_KEY_SECRET');
      for (const name of ['relay', 'poll', 'lorawan'] as const) {
        expect(env(name), name).not.toHaveProperty('DEVICE_KEYS_SECRET');
        expect(env(name), name).not.toHaveProperty('DEVICE_KEY_MASTER_SECRET');
      }
      // Network-server API keys are for the LoRaWAN function alone.
      for (const name of ['relay', 'ingest', 'config', 'poll'] as const) expect(env(name), name).not.toHaveProperty('LORAWAN_SECRETS_SECRET');
      // The secret's name, and an empty list of integrations until a deployment names its own.
      expect(env('lorawan').LORAWAN_SECRETS_SECRET).toBe(`iotcore-relay/${STAGE}/lorawan`);
      expect(env('lorawan').LORAWAN_INTEGRATIONS).toBe('[]');
      // The queue URLs come from the stack itself, and the table name is the table's.
      expect(env('relay').RELAY_DEAD_LETTER_QUEUE_URL).toEqual({ Ref: 'RelayDeadLetterQueue' });
      for (const name of ['relay', 'ingest', 'poll', 'lorawan'] as const) expect(env(name).RELAY_QUEUE_URL, name).toEqual({ Ref: 'RelayQueue' });
      for (const name of ['relay', 'ingest', 'config', 'poll', 'lorawan'] as const) {
        expect(env(name).CONFIG_TABLE, name).toBe(resource('ConfigTable').Properties.TableName);
      }
    });
  });

  describe('relay queue and its dead-letter queue', () => {
    it('are FIFO, with a redrive after at least 5 receives into the FIFO dead-letter queue', () => {
      const queue = resource('RelayQueue').Properties;
      const dlq = resource('RelayDeadLetterQueue').Properties;
      expect(queue.FifoQueue).toBe(true);
      expect(dlq.FifoQueue).toBe(true);
      const redrive = queue.RedrivePolicy as JsonObject;
      expect(redrive.deadLetterTargetArn).toEqual({ 'Fn::GetAtt': ['RelayDeadLetterQueue', 'Arn'] });
      expect(redrive.maxReceiveCount).toBeGreaterThanOrEqual(5);
    });

    it('keep dead-lettered records 14 days, longer than the relay queue keeps anything', () => {
      const queueRetention = resource('RelayQueue').Properties.MessageRetentionPeriod as number;
      const dlqRetention = resource('RelayDeadLetterQueue').Properties.MessageRetentionPeriod as number;
      expect(dlqRetention).toBe(14 * 24 * 3600);
      expect(dlqRetention).toBeGreaterThan(queueRetention);
    });

    it('hide a received batch for at least six times the relay timeout, both from one value', () => {
      const timeout = fn('relay').Timeout as number;
      const visibility = resource('RelayQueue').Properties.VisibilityTimeout as number;
      expect(timeout).toBe(timing.relayTimeoutSeconds);
      expect(visibility).toBe(timing.queueVisibilityTimeoutSeconds);
      expect(visibility).toBeGreaterThanOrEqual(6 * timeout);
    });

    it('feed the relay in batches of 10 with per-record failure reports', () => {
      const mappings = ofType('AWS::Lambda::EventSourceMapping');
      expect(mappings).toHaveLength(1);
      const mapping = mappings[0]![1].Properties;
      expect(mapping.EventSourceArn).toEqual({ 'Fn::GetAtt': ['RelayQueue', 'Arn'] });
      expect(mapping.FunctionName).toEqual({ 'Fn::GetAtt': [logicalId('relay'), 'Arn'] });
      expect(mapping.BatchSize).toBe(10);
      expect(mapping.FunctionResponseTypes).toEqual(['ReportBatchItemFailures']);
    });

    it("cap the relay's concurrency at relayMaxConcurrency, the cap the default publish quota allows", () => {
      const [[, mapping]] = ofType('AWS::Lambda::EventSourceMapping') as [[string, Resource]];
      // 8: 80 % of 60,000 publishes a minute over what one invocation can publish at its fastest (lib/fleet/capacity.ts).
      expect(mapping.Properties.ScalingConfig).toEqual({ MaximumConcurrency: sizeFleet({ devices: 1, intervalSeconds: 600 }).relay.maxConcurrency });
      expect(mapping.Properties.ScalingConfig).toEqual({ MaximumConcurrency: 8 });
    });
  });

  describe('relay timeout', () => {
    it('covers the worst case of one gateway session with the default settings of lib/relay-settings.ts', () => {
      const s = loadRelaySettings(MINIMAL_RELAY_ENV);
      // Phases in order (deploy/relay-timing.cjs explains each); publishing and config polls run side by side.
      const startupMs = 2000;
      const sessionMs =
        s.connectTimeoutMs +
        s.attachTimeoutMs + // errors-topic SUBACK
        s.attachTimeoutMs + // attaches
        Math.max(s.pubackTimeoutMs, s.attachTimeoutMs + s.configTimeoutMs) +
        2 * s.closeTimeoutMs + // detach barrier, then DISCONNECT
        s.lateErrorGraceMs; // late errors after the barrier
      const worstCaseMs = startupMs + sessionMs + s.deadlineMarginMs;
      expect((fn('relay').Timeout as number) * 1000).toBeGreaterThanOrEqual(worstCaseMs);
    });
  });

  describe('config table', () => {
    it('is on demand, with point-in-time recovery, TTL and the key schema of the config store', () => {
      const table = resource('ConfigTable').Properties;
      const shape = configTableDefinition('any');
      expect(table.BillingMode).toBe('PAY_PER_REQUEST');
      expect(table.PointInTimeRecoverySpecification).toEqual({ PointInTimeRecoveryEnabled: true });
      expect(table.KeySchema).toEqual(shape.KeySchema);
      expect(table.AttributeDefinitions).toEqual(shape.AttributeDefinitions);
      expect(table.TimeToLiveSpecification).toEqual({ AttributeName: TTL_ATTRIBUTE, Enabled: true });
    });
  });

  describe('IAM', () => {
    it('gives every function a role of its own, and the framework creates no shared one', () => {
      const roles = ofType('AWS::IAM::Role').map(([id]) => id);
      expect(roles).not.toContain('IamRoleLambdaExecution');
      const used = FUNCTIONS.map((name) => (fn(name).Role as { 'Fn::GetAtt': [string, string] })['Fn::GetAtt'][0]);
      expect(new Set(used).size).toBe(FUNCTIONS.length);
      for (const role of used) expect(roles).toContain(role);
    });

    it('never grants an SQS, DynamoDB or Secrets Manager action on *, nor a wildcard action', () => {
      const statements = allStatements(template);
      expect(statements.length).toBeGreaterThan(0);
      for (const { where, statement } of statements) {
        const actions = list(statement.Action).map(String);
        expect(statement.NotAction, where).toBeUndefined();
        expect(statement.NotResource, where).toBeUndefined();
        for (const action of actions) expect(action, where).not.toMatch(/\*/);
        if (!actions.some((a) => /^(sqs|dynamodb|secretsmanager):/.test(a))) continue;
        for (const r of list(statement.Resource)) {
          const text = typeof r === 'string' ? r : JSON.stringify(r);
          expect(text, `${where}: ${actions.join(', ')}`).not.toMatch(/\*/);
        }
      }
    });

    // Every conditional statement counts here, whatever its condition: the X-Ray writes only exist with tracing on
    // (checked under 'tracing' below), and X-Ray takes no resource-level permissions.
    const XRAY = { 'xray:PutTraceSegments': ['*'], 'xray:PutTelemetryRecords': ['*'] };

    it('grants each function exactly what its code calls, on exact resources', () => {
      const secret = (name: string): string => `arn:\${AWS::Partition}:secretsmanager:\${AWS::Region}:\${AWS::AccountId}:secret:iotcore-relay/${STAGE}/${name}-??????`;
      expect(grants(template, 'RelayRole')).toEqual({
        'logs:CreateLogStream': ['RelayLogGroup'],
        'logs:PutLogEvents': ['RelayLogGroup'],
        'sqs:ReceiveMessage': ['RelayQueue'],
        'sqs:DeleteMessage': ['RelayQueue'],
        'sqs:GetQueueAttributes': ['RelayQueue'],
        'sqs:ChangeMessageVisibility': ['RelayQueue'],
        'sqs:SendMessage': ['RelayDeadLetterQueue'],
        'dynamodb:GetItem': ['ConfigTable'],
        'dynamodb:UpdateItem': ['ConfigTable'],
        'secretsmanager:GetSecretValue': [secret('gateway-keys')],
        'kms:Decrypt': ['(the secretsKmsKeyArn parameter)'],
        ...XRAY,
      });
      expect(grants(template, 'IngestRole')).toEqual({
        'logs:CreateLogStream': ['IngestLogGroup'],
        'logs:PutLogEvents': ['IngestLogGroup'],
        'sqs:SendMessage': ['RelayQueue'],
        'dynamodb:GetItem': ['ConfigTable'],
        'secretsmanager:GetSecretValue': [secret('device-key-master'), secret('device-keys')],
        'kms:Decrypt': ['(the secretsKmsKeyArn parameter)'],
        ...XRAY,
      });
      expect(grants(template, 'ConfigRole')).toEqual({
        'logs:CreateLogStream': ['ConfigLogGroup'],
        'logs:PutLogEvents': ['ConfigLogGroup'],
        'dynamodb:GetItem': ['ConfigTable'],
        'secretsmanager:GetSecretValue': [secret('device-key-master'), secret('device-keys')],
        'kms:Decrypt': ['(the secretsKmsKeyArn parameter)'],
        ...XRAY,
      });
      expect(grants(template, 'LorawanRole')).toEqual({
        'logs:CreateLogStream': ['LorawanLogGroup'],
        'logs:PutLogEvents': ['LorawanLogGroup'],
        'sqs:SendMessage': ['RelayQueue'],
        'dynamodb:GetItem': ['ConfigTable'],
        'dynamodb:UpdateItem': ['ConfigTable'],
        'secretsmanager:GetSecretValue': [secret('lorawan')],
        'kms:Decrypt': ['(the secretsKmsKeyArn parameter)'],
        ...XRAY,
      });
      expect(grants(template, 'PollRole')).toEqual({
        'logs:CreateLogStream': ['PollLogGroup'],
        'logs:PutLogEvents': ['PollLogGroup'],
        'sqs:SendMessage': ['RelayQueue'],
        'dynamodb:Scan': ['ConfigTable'],
        ...XRAY,
      });
    });
  });

  describe('HTTP API', () => {
    const routes = (): Map<string, string> => {
      const byKey = new Map<string, string>();
      for (const [, route] of ofType('AWS::ApiGatewayV2::Route')) {
        const target = JSON.stringify(route.Properties.Target);
        const fn = FUNCTIONS.find((name) => target.includes(`HttpApiIntegration${name[0]!.toUpperCase()}${name.slice(1)}`));
        byKey.set(route.Properties.RouteKey as string, fn ?? target);
      }
      return byKey;
    };
    // A concrete path for a route key, with values the handlers accept.
    const REGISTRY = { project: 'demo-project', location: 'us-central1', registry: 'demo-registry' };
    const concrete = (path: string, deviceSegment: string): string =>
      path
        .replace('{project}', REGISTRY.project)
        .replace('{location}', REGISTRY.location)
        .replace('{registry}', REGISTRY.registry)
        .replace('{device}', deviceSegment)
        .replace('{subfolder+}', 'alarms/high');

    it('routes the ingest paths to the ingest function, each one a path lib/ingest/routes.ts serves', () => {
      const ingest = [...routes()].filter(([, target]) => target === 'ingest').map(([key]) => key);
      expect(ingest.sort()).toEqual(
        [
          'POST /devices/{device}/batch',
          'POST /devices/{device}/events',
          'POST /devices/{device}/events/{subfolder+}',
          'POST /devices/{device}/state',
          'POST /v1/projects/{project}/locations/{location}/registries/{registry}/devices/{device}',
        ].sort(),
      );
      for (const key of ingest) {
        const [method, path] = key.split(' ') as [string, string];
        const device = path.startsWith('/v1/') ? 'pump-0001:publishEvent' : 'pump-0001';
        expect(matchRoute(method, concrete(path, device), REGISTRY), key).toHaveProperty('route');
      }
    });

    it('routes the config paths to the config function, each one a path handlers/config.ts serves', async () => {
      const config = [...routes()].filter(([, target]) => target === 'config').map(([key]) => key);
      expect(config.sort()).toEqual(['GET /devices/{device}/config', 'GET /v1/projects/{project}/locations/{location}/registries/{registry}/devices/{device}/config']);
      const handle = createConfigHandler({
        env: { IOTCORE_PROJECT: REGISTRY.project, IOTCORE_LOCATION: REGISTRY.location, IOTCORE_REGISTRY: REGISTRY.registry },
        store: { getConfig: async () => undefined },
        authenticator: { authenticate: async (_header, deviceId) => ({ deviceId, method: 'device-key' }), schemes: ['Device-Key'] },
      });
      for (const key of config) {
        const [method, path] = key.split(' ') as [string, string];
        const event: ConfigEvent = { rawPath: concrete(path, 'pump-0001'), headers: {}, requestContext: { http: { method } } as APIGatewayProxyEventV2['requestContext'] };
        const answer = await handle(event);
        // The route is served: the answer is about the device's config, not about an unknown path.
        expect(answer.statusCode, key).toBe(404);
        expect(String(answer.body), key).toMatch(/no configuration of device pump-0001/);
      }
    });

    it('routes the LoRaWAN webhooks to the lorawan function, each one a path lib/lorawan serves', async () => {
      const lorawan = [...routes()].filter(([, target]) => target === 'lorawan').map(([key]) => key);
      expect(lorawan.sort()).toEqual(['POST /lorawan/{integration}', 'POST /lorawan/{integration}/{path+}']);
      const { LorawanService } = await import('../../lib/lorawan/index.js');
      // No integration configured: a served path is answered about the integration, not as an unknown route.
      const service = new LorawanService({ integrations: new Map(), gatewayIds: ['gw-1'], queue: { send: async () => [] } });
      for (const key of lorawan) {
        const [method, path] = key.split(' ') as [string, string];
        const answer = await service.handle({
          method,
          path: path.replace('{integration}', 'farm-ttn').replace('{path+}', 'uplink'),
          headers: {},
          body: Buffer.from('{}'),
          requestId: 'r',
          query: {},
        });
        expect(answer.statusCode, key).toBe(404);
        expect((answer.body as { error: { message: string } }).error.message, key).toMatch(/no LoRaWAN integration named "farm-ttn"/);
      }
    });

    it('is throttled per stage', () => {
      const settings = resource('HttpApiStage').Properties.DefaultRouteSettings as JsonObject;
      expect(Number(settings.ThrottlingRateLimit)).toBeGreaterThan(0);
      expect(Number(settings.ThrottlingBurstLimit)).toBeGreaterThanOrEqual(Number(settings.ThrottlingRateLimit));
    });
  });

  describe('poller', () => {
    it('runs on its schedule', () => {
      const rules = ofType('AWS::Events::Rule');
      expect(rules).toHaveLength(1);
      const rule = rules[0]![1].Properties;
      expect(rule.ScheduleExpression).toBe('rate(15 minutes)');
      expect(JSON.stringify(rule.Targets)).toContain(logicalId('poll'));
    });
  });

  describe('alarms and outputs', () => {
    const alarmOn = (metric: string): JsonObject => {
      const found = ofType('AWS::CloudWatch::Alarm').filter(([, a]) => a.Properties.MetricName === metric);
      expect(found, metric).toHaveLength(1);
      return found[0]![1].Properties;
    };

    it('alarm when the dead-letter queue holds anything', () => {
      const alarm = alarmOn('ApproximateNumberOfMessagesVisible');
      expect(alarm.Namespace).toBe('AWS/SQS');
      expect(alarm.Dimensions).toEqual([{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['RelayDeadLetterQueue', 'QueueName'] } }]);
      expect(alarm).toMatchObject({ Threshold: 0, ComparisonOperator: 'GreaterThanThreshold' });
    });

    it('alarm when the relay function fails as a whole', () => {
      const alarm = alarmOn('Errors');
      expect(alarm.Namespace).toBe('AWS/Lambda');
      expect(alarm.Dimensions).toEqual([{ Name: 'FunctionName', Value: { Ref: logicalId('relay') } }]);
      expect(alarm).toMatchObject({ Threshold: 0, ComparisonOperator: 'GreaterThanThreshold' });
    });

    it('alarm when the oldest relay queue message is older than the longest retry backoff', () => {
      const alarm = alarmOn('ApproximateAgeOfOldestMessage');
      expect(alarm.Dimensions).toEqual([{ Name: 'QueueName', Value: { 'Fn::GetAtt': ['RelayQueue', 'QueueName'] } }]);
      expect(alarm.ComparisonOperator).toBe('GreaterThanThreshold');
      const backoffMaxSeconds = loadRelaySettings(MINIMAL_RELAY_ENV).backoffMaxSeconds;
      expect(Number(alarm.Threshold)).toBeGreaterThan(backoffMaxSeconds);
    });

    it('output the HTTP API URL and the queue URLs', () => {
      expect(template.Outputs.HttpApiUrl).toBeDefined();
      expect(JSON.stringify(template.Outputs.HttpApiUrl!.Value)).toContain('HttpApi');
      expect(template.Outputs.RelayQueueUrl?.Value).toEqual({ Ref: 'RelayQueue' });
      expect(template.Outputs.RelayDeadLetterQueueArn?.Value).toEqual({ 'Fn::GetAtt': ['RelayDeadLetterQueue', 'Arn'] });
    });
  });

  describe('dashboard', () => {
    const dashboard = (): { text: string; names: Record<string, Json> } => {
      const found = ofType('AWS::CloudWatch::Dashboard');
      expect(found.map(([id]) => id)).toEqual(['RelayDashboard']);
      const sub = (found[0]![1].Properties.DashboardBody as { 'Fn::Sub': [string, Record<string, Json>] })['Fn::Sub'];
      expect(Array.isArray(sub) && typeof sub[0] === 'string').toBe(true);
      return { text: sub[0], names: sub[1] };
    };
    /** The body as CloudFormation will hand it over: `${...}` replaced, a stack reference by `<reference>`. */
    const resolved = (): DashboardBody => {
      const { text, names } = dashboard();
      return JSON.parse(
        text.replace(/\$\{([^}]+)\}/g, (_m, ref: string) => {
          if (ref in names) return String(names[ref]);
          return ref === 'AWS::Region' ? 'us-east-1' : `<${ref}>`;
        }),
      ) as DashboardBody;
    };
    const emitted = emittedMetrics();

    it('is a dashboard of the stage whose body is valid JSON once CloudFormation has put in the names', () => {
      expect(resource('RelayDashboard').Properties.DashboardName).toBe(`iotcore-relay-${STAGE}`);
      const body = resolved();
      expect(body.widgets.length).toBeGreaterThanOrEqual(10);
      for (const w of body.widgets) expect(w.properties, JSON.stringify(w)).toBeDefined();
      // Every graph draws in the stack's region.
      for (const w of body.widgets.filter((w) => w.type === 'metric')) expect(w.properties.region).toBe('us-east-1');
    });

    it("reads the relay's metrics in the namespace and service the handlers write them with", () => {
      const { names } = dashboard();
      for (const name of FUNCTIONS) {
        const env = (fn(name).Environment as { Variables: JsonObject }).Variables;
        expect({ name, namespace: env.POWERTOOLS_METRICS_NAMESPACE, service: env.POWERTOOLS_SERVICE_NAME }).toEqual({
          name,
          namespace: names.Namespace,
          service: names.Service,
        });
      }
    });

    it('draws only metrics the code emits, read from its addMetric calls', () => {
      // The list is complete: no metric is named other than literally.
      expect(emitted.unreadable).toEqual([]);
      expect(emitted.metrics.size).toBeGreaterThanOrEqual(20);
      const drawn = dashboardMetrics(resolved(), String(dashboard().names.Namespace));
      expect(drawn.own.length).toBeGreaterThan(0);
      for (const { name, service } of drawn.own) {
        expect(emitted.metrics.has(name), `${name} is on the dashboard but nothing emits it`).toBe(true);
        expect(service).toBe(dashboard().names.Service);
      }
      for (const dimension of drawn.searchDimensions) expect(emitted.dimensions.has(dimension), dimension).toBe(true);
      // What an operator must find there.
      for (const name of ['RecordsConfirmed', 'RecordsFailedBack', 'RecordsDeadLettered', 'Sessions', 'SessionDuration', 'GatewayErrors', 'IngestRefused', 'IngestFailed', 'ConfigsDelivered', 'ConfigsChanged']) {
        expect(drawn.own.map((m) => m.name), name).toContain(name);
      }
    });

    it("points every queue, function, API and alarm at the stack's own resources", () => {
      const { text, names } = dashboard();
      const typeOf = (id: string): string | undefined => template.Resources[id]?.Type;
      // Every reference is a name given by serverless.yml, the region, or a resource of this stack.
      for (const [, ref] of text.matchAll(/\$\{([^}]+)\}/g)) {
        if (ref! in names || ref === 'AWS::Region') continue;
        expect(typeOf(ref!.split('.')[0]!), ref).toBeDefined();
      }
      const expectedType: Record<string, string> = { QueueName: 'AWS::SQS::Queue', FunctionName: 'AWS::Lambda::Function', ApiId: 'AWS::ApiGatewayV2::Api' };
      const { aws } = dashboardMetrics(resolved(), String(names.Namespace));
      expect(aws.length).toBeGreaterThan(0);
      for (const m of aws) {
        for (const [dimension, value] of Object.entries(m.dimensions)) {
          const ref = /^<([A-Za-z0-9]+)(?:\.QueueName)?>$/.exec(value);
          expect(ref, `${m.namespace} ${m.name}: ${dimension}=${value} is not a reference to the stack`).not.toBeNull();
          expect(typeOf(ref![1]!), `${dimension}=${value}`).toBe(expectedType[dimension]);
        }
      }
      // The relay queue's age and depth, the dead-letter queue's depth, the API's 4xx and 5xx.
      const drawn = (namespace: string, name: string, dimension: string, value: string): boolean =>
        aws.some((m) => m.namespace === namespace && m.name === name && m.dimensions[dimension] === value);
      expect(drawn('AWS/SQS', 'ApproximateAgeOfOldestMessage', 'QueueName', '<RelayQueue.QueueName>')).toBe(true);
      expect(drawn('AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'QueueName', '<RelayQueue.QueueName>')).toBe(true);
      expect(drawn('AWS/SQS', 'ApproximateNumberOfMessagesVisible', 'QueueName', '<RelayDeadLetterQueue.QueueName>')).toBe(true);
      expect(drawn('AWS/ApiGateway', '4xx', 'ApiId', '<HttpApi>')).toBe(true);
      expect(drawn('AWS/ApiGateway', '5xx', 'ApiId', '<HttpApi>')).toBe(true);
      for (const name of FUNCTIONS) expect(drawn('AWS/Lambda', 'Errors', 'FunctionName', `<${logicalId(name)}>`), name).toBe(true);
      // The alarm widget lists the stack's three alarms.
      const alarms = resolved().widgets.filter((w) => w.type === 'alarm').flatMap((w) => w.properties.alarms as string[]);
      expect(alarms.sort()).toEqual(ofType('AWS::CloudWatch::Alarm').map(([id]) => `<${id}.Arn>`).sort());
    });
  });

  describe('tracing', () => {
    it('is off by default: no function traces and no role may write to X-Ray', () => {
      for (const name of FUNCTIONS) expect(fn(name).TracingConfig, name).toBeUndefined();
      for (const role of ROLES) expect(grantsWhere(template, role)).not.toHaveProperty('xray:PutTraceSegments');
    });

    it('with --param tracing=true, every function traces actively and every role may write its traces, and nothing else changes', () => {
      for (const name of FUNCTIONS) expect(traced.Resources[logicalId(name)]!.Properties.TracingConfig, name).toEqual({ Mode: 'Active' });
      for (const role of ROLES) {
        const on = grantsWhere(traced, role);
        const off = grantsWhere(template, role);
        expect(on, role).toMatchObject({ 'xray:PutTraceSegments': ['*'], 'xray:PutTelemetryRecords': ['*'] });
        const { ['xray:PutTraceSegments']: _a, ['xray:PutTelemetryRecords']: _b, ...rest } = on;
        expect(rest, role).toEqual(off);
      }
      // The same resources; a function version's logical ID is a hash of its configuration, so it changes.
      const ids = (t: Template): string[] => Object.entries(t.Resources).filter(([, r]) => r.Type !== 'AWS::Lambda::Version').map(([id]) => id).sort();
      expect(ids(traced)).toEqual(ids(template));
      expect(Object.values(traced.Resources).filter((r) => r.Type === 'AWS::Lambda::Version')).toHaveLength(FUNCTIONS.length);
    });
  });

  describe('bundles', () => {
    const zips = new Map<FunctionName, Map<string, ZipEntry>>();
    beforeAll(async () => {
      for (const name of FUNCTIONS) zips.set(name, readZip(await readFile(join(artifacts, `${name}.zip`))));
    });
    const bundle = (name: FunctionName): ZipEntry => zips.get(name)!.get(`handlers/${name}.mjs`)!;
    const sources = (name: FunctionName): string[] =>
      (JSON.parse(zips.get(name)!.get(`handlers/${name}.mjs.map`)!.read().toString('utf8')) as { sources: string[] }).sources;

    it('are one zip per function holding only its ES module bundle, its own chunks, and their source maps', async () => {
      expect((await readdir(artifacts)).filter((f) => f.endsWith('.zip')).sort()).toEqual(FUNCTIONS.map((n) => `${n}.zip`).sort());
      for (const name of FUNCTIONS) {
        const files = [...zips.get(name)!.keys()];
        const chunks = files.filter((f) => f.startsWith(`handlers/${name}.chunks/`));
        expect(files.filter((f) => !chunks.includes(f)).sort(), name).toEqual([`handlers/${name}.mjs`, `handlers/${name}.mjs.map`]);
        // Every chunk comes with its map; no other function's chunks ride along.
        for (const chunk of chunks) expect(chunk, name).toMatch(/^handlers\/[a-z]+\.chunks\/[\w-]+\.mjs(\.map)?$/);
        expect(chunks.filter((f) => f.endsWith('.mjs')).map((f) => `${f}.map`).sort(), name).toEqual(chunks.filter((f) => f.endsWith('.map')).sort());
        const code = bundle(name).read().toString('utf8');
        // An ES module exporting `handler`, pointing at its map.
        expect(code, name).toMatch(/export\s*\{[^}]*\bas handler\b[^}]*\}/);
        expect(code, name).toMatch(/\/\/# sourceMappingURL=[\w.-]+\.mjs\.map\s*$/);
      }
      // The relay loads its AWS SDK clients on demand: they are chunks of its own.
      expect([...zips.get('relay')!.keys()].some((f) => f.startsWith('handlers/relay.chunks/'))).toBe(true);
    });

    it('hold every file their modules import', () => {
      for (const name of FUNCTIONS) {
        const files = zips.get(name)!;
        for (const [path, entry] of files) {
          if (!path.endsWith('.mjs')) continue;
          const code = entry.read().toString('utf8');
          // Relative specifiers of static and dynamic imports (minified: `from"./x.mjs"`, `import("./x.mjs")`).
          for (const m of code.matchAll(/(?:\bfrom\s*|\bimport\s*\(\s*|\bimport\s*)["'](\.{1,2}\/[^"']+)["']/g)) {
            const target = posix.normalize(posix.join(posix.dirname(path), m[1]!));
            expect(files.has(target), `${name}: ${path} imports ${m[1]}`).toBe(true);
          }
        }
      }
    });

    it('stay under their size budgets', () => {
      for (const name of FUNCTIONS) {
        expect(bundle(name).size, `${name}: ${bundle(name).size} bytes`).toBeLessThanOrEqual(BUNDLE_BUDGET_KIB[name] * 1024);
      }
    });

    it('keep mqtt and the emulator out of the HTTP handlers', () => {
      for (const name of ['ingest', 'config', 'lorawan'] as const) {
        const offending = sources(name).filter((s) => MQTT_OR_EMULATOR.test(s));
        expect(offending, name).toEqual([]);
      }
      // The check can fail: the relay, which speaks MQTT, does carry the client.
      expect(sources('relay').some((s) => MQTT_OR_EMULATOR.test(s))).toBe(true);
    });
  });

  it('needed no AWS credentials', () => {
    expect(run.output).not.toMatch(/credentials/i);
  });
});

// --- Reading IAM statements --------------------------------------------------------------------------------------

interface Statement {
  Action?: Json;
  NotAction?: Json;
  Resource?: Json;
  NotResource?: Json;
  Condition?: Json;
}

function list(value: Json | undefined): Json[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : [value];
}

/** A statement list's entries, with `Fn::If [condition, statement, AWS::NoValue]` read as the statement it adds. */
function statementsOf(document: Json): Statement[] {
  const out: Statement[] = [];
  for (const entry of list((document as JsonObject).Statement)) {
    const conditional = (entry as JsonObject)['Fn::If'] as Json[] | undefined;
    if (conditional === undefined) out.push(entry as Statement);
    else for (const branch of conditional.slice(1)) if (!isNoValue(branch)) out.push(branch as Statement);
  }
  return out;
}

function isNoValue(value: Json): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value) && value.Ref === 'AWS::NoValue';
}

/** Every statement of every role and policy in the template, framework-generated ones included. */
function allStatements(template: Template): { where: string; statement: Statement }[] {
  const out: { where: string; statement: Statement }[] = [];
  for (const [id, r] of Object.entries(template.Resources)) {
    if (r.Type === 'AWS::IAM::Role') {
      for (const policy of list(r.Properties.Policies)) {
        for (const statement of statementsOf((policy as JsonObject).PolicyDocument!)) out.push({ where: id, statement });
      }
    } else if (r.Type === 'AWS::IAM::Policy' || r.Type === 'AWS::IAM::ManagedPolicy') {
      for (const statement of statementsOf(r.Properties.PolicyDocument!)) out.push({ where: id, statement });
    }
  }
  return out;
}

/** What a resource reference points at: the logical ID of `!GetAtt X.Arn`, the text of a `!Sub`, or the string. */
function target(resource: Json): string {
  if (typeof resource === 'string') return resource === '' ? '(the secretsKmsKeyArn parameter)' : resource;
  const o = resource as JsonObject;
  if (Array.isArray(o['Fn::GetAtt'])) return String(o['Fn::GetAtt'][0]);
  if (typeof o['Fn::Sub'] === 'string') return o['Fn::Sub'];
  return JSON.stringify(resource);
}

/** A role's grants as action -> sorted targets. */
function grants(template: Template, roleId: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const { where, statement } of allStatements(template)) {
    if (where !== roleId) continue;
    for (const action of list(statement.Action).map(String)) {
      out[action] = [...(out[action] ?? []), ...list(statement.Resource).map(target)].sort();
    }
  }
  return out;
}

// --- Reading the dashboard ------------------------------------------------------------------------------------------

interface DashboardBody {
  widgets: { type: string; properties: JsonObject }[];
}

interface DrawnMetrics {
  /** The relay's own metrics (its namespace), with the service dimension they are read with. */
  own: { name: string; service: string | undefined }[];
  /** Dimensions the SEARCH expressions group the relay's metrics by. */
  searchDimensions: string[];
  /** Metrics of AWS services, with their dimensions. */
  aws: { namespace: string; name: string; dimensions: Record<string, string> }[];
}

/** Every metric the graphs draw: `[namespace, name, dimension, value, ..., {options}]` and SEARCH expressions. */
function dashboardMetrics(body: DashboardBody, namespace: string): DrawnMetrics {
  const drawn: DrawnMetrics = { own: [], searchDimensions: [], aws: [] };
  for (const widget of body.widgets.filter((w) => w.type === 'metric')) {
    for (const entry of widget.properties.metrics as Json[][]) {
      const first = entry[0];
      if (typeof first === 'object' && first !== null && !Array.isArray(first) && typeof first.expression === 'string') {
        const search = /^SEARCH\('\{([^}]+)\} MetricName="([^"]+)" service="([^"]+)"'/.exec(first.expression);
        if (search === null) throw new Error(`an expression the test cannot read: ${first.expression}`);
        const [ns, ...dimensions] = search[1]!.split(',');
        expect(ns).toBe(namespace);
        drawn.own.push({ name: search[2]!, service: search[3] });
        drawn.searchDimensions.push(...dimensions);
        continue;
      }
      const parts = entry.filter((p): p is string => typeof p === 'string');
      // Shorthand ('...', '.') would hide what is drawn from this reading, and from a reader of the JSON.
      expect(parts, JSON.stringify(entry)).not.toContain('...');
      expect(parts, JSON.stringify(entry)).not.toContain('.');
      const [ns, name, ...pairs] = parts;
      const dimensions: Record<string, string> = {};
      for (let i = 0; i + 1 < pairs.length; i += 2) dimensions[pairs[i]!] = pairs[i + 1]!;
      if (ns === namespace) drawn.own.push({ name: name!, service: dimensions.service });
      else drawn.aws.push({ namespace: ns!, name: name!, dimensions });
    }
  }
  return drawn;
}

// --- Conditions --------------------------------------------------------------------------------------------------

const ROLES = ['RelayRole', 'IngestRole', 'ConfigRole', 'PollRole'] as const;

/** A condition of the template, evaluated: the framework resolved every parameter, so only literals remain. */
function holds(template: Template, condition: Json): boolean {
  const c = condition as JsonObject;
  if (typeof c.Condition === 'string') return holds(template, template.Conditions![c.Condition]!);
  if (Array.isArray(c['Fn::Equals'])) return String(c['Fn::Equals'][0]) === String(c['Fn::Equals'][1]);
  if (Array.isArray(c['Fn::Not'])) return !holds(template, c['Fn::Not'][0]!);
  throw new Error(`a condition this test cannot evaluate: ${JSON.stringify(condition)}`);
}

/** A role's grants as action -> sorted targets, counting a conditional statement only where its condition holds. */
function grantsWhere(template: Template, roleId: string): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  const role = template.Resources[roleId]!;
  for (const policy of list(role.Properties.Policies)) {
    for (const entry of list((policy as JsonObject).PolicyDocument && ((policy as JsonObject).PolicyDocument as JsonObject).Statement)) {
      const conditional = (entry as JsonObject)['Fn::If'] as Json[] | undefined;
      const statement = conditional === undefined ? entry : holds(template, { Condition: conditional[0]! }) ? conditional[1]! : conditional[2]!;
      if (isNoValue(statement)) continue;
      for (const action of list((statement as Statement).Action).map(String)) {
        out[action] = [...(out[action] ?? []), ...list((statement as Statement).Resource).map(target)].sort();
      }
    }
  }
  return out;
}
