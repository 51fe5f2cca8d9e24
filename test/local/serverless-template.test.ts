/**
 * Reading serverless.yml: CloudFormation's short-form tags, the framework's variables, and the resources and
 * environments the local stack builds from it.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadServerlessTemplate, parseServerlessTemplate } from '../../local/serverless-template.js';
import { projectRoot } from '../../local/stack.js';
import { evaluateIntrinsics, functionEnvironment, queueSpec, tableSpec, type LocalReferences } from '../../local/template-resources.js';

const FIXTURE = `
service: svc
params:
  default:
    level: INFO
    which: one
  local:
    level: DEBUG
custom:
  timeout: 42
  name: \${self:service}-\${sls:stage}
  pick:
    one: { v: first }
    two: { v: second }
  timing: \${file(./timing.cjs):visibility}
  unused: \${ssm:/never/read}
provider:
  stage: \${opt:stage, 'dev'}
  environment:
    LEVEL: \${param:level}
    FROM_ENV: \${env:LOCAL_THING, 'fallback'}
functions:
  worker:
    handler: handlers/worker.handler
    timeout: \${self:custom.timeout}
    environment:
      QUEUE_URL: !Ref Queue
      QUEUE_ARN: !GetAtt Queue.Arn
      PICKED: \${self:custom.pick.\${param:which}.v}
resources:
  Conditions:
    Flag: !Not [!Equals ['\${param:level}', '']]
  Resources:
    Queue:
      Type: AWS::SQS::Queue
      Properties:
        QueueName: \${self:custom.name}-q.fifo
        FifoQueue: true
        VisibilityTimeout: \${self:custom.timing}
        RedrivePolicy:
          deadLetterTargetArn: !GetAtt [Dlq, Arn]
          maxReceiveCount: 3
        Tags:
          - Key: a
            Value: !Sub 'arn:\${AWS::Partition}:x:\${AWS::Region}'
    Dlq:
      Type: AWS::SQS::Queue
      Properties:
        QueueName: dlq.fifo
        FifoQueue: true
        Extra: !If [Flag, yes, !Ref AWS::NoValue]
`;

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'iotcore-template-'));
  await writeFile(join(dir, 'serverless.yml'), FIXTURE);
  await writeFile(join(dir, 'timing.cjs'), "'use strict';\nmodule.exports = { visibility: 7 * 6 };\n");
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const refs: LocalReferences = {
  ref: (id) => (id === 'Queue' ? 'http://local/q' : undefined),
  getAtt: (id, attribute) => (id === 'Queue' && attribute === 'Arn' ? 'arn:local:q' : undefined),
};

describe('ServerlessTemplate', () => {
  it('reads the CloudFormation short forms into their long forms', () => {
    const t = loadServerlessTemplate(join(dir, 'serverless.yml'), { stage: 'local' });
    expect(t.get(['functions', 'worker', 'environment', 'QUEUE_URL'])).toEqual({ Ref: 'Queue' });
    expect(t.get(['functions', 'worker', 'environment', 'QUEUE_ARN'])).toEqual({ 'Fn::GetAtt': ['Queue', 'Arn'] });
    expect(t.get(['resources', 'Resources', 'Queue', 'Properties', 'RedrivePolicy', 'deadLetterTargetArn'])).toEqual({ 'Fn::GetAtt': ['Dlq', 'Arn'] });
    expect(t.get(['resources', 'Conditions', 'Flag'])).toEqual({ 'Fn::Not': [{ 'Fn::Equals': ['DEBUG', ''] }] });
    expect(t.get(['resources', 'Resources', 'Dlq', 'Properties', 'Extra'])).toEqual({ 'Fn::If': ['Flag', 'yes', { Ref: 'AWS::NoValue' }] });
  });

  it("resolves the framework's variables and leaves CloudFormation's alone", () => {
    const t = loadServerlessTemplate(join(dir, 'serverless.yml'), { stage: 'local', env: { LOCAL_THING: 'from-env' } });
    // A whole-string variable keeps its type.
    expect(t.functionTimeoutSeconds('worker')).toBe(42);
    expect(t.get(['resources', 'Resources', 'Queue', 'Properties', 'QueueName'])).toBe('svc-local-q.fifo');
    // params.<stage> over params.default; nested variables resolve inside out.
    expect(t.functionEnvironment('worker')).toMatchObject({ LEVEL: 'DEBUG', FROM_ENV: 'from-env', PICKED: 'first' });
    expect(t.get(['custom', 'timing'])).toBe(42);
    expect(t.get(['resources', 'Resources', 'Queue', 'Properties', 'Tags'])).toEqual([
      { Key: 'a', Value: { 'Fn::Sub': 'arn:${AWS::Partition}:x:${AWS::Region}' } },
    ]);
  });

  it('gives --param values precedence, and uses fallbacks and defaults', () => {
    const t = loadServerlessTemplate(join(dir, 'serverless.yml'), { stage: 'prod', params: { which: 'two' } });
    expect(t.functionEnvironment('worker')).toMatchObject({ LEVEL: 'INFO', FROM_ENV: 'fallback', PICKED: 'second' });
    expect(t.get(['provider', 'stage'])).toBe('prod');
  });

  it('refuses a variable source it cannot serve, only where it is read', () => {
    const t = loadServerlessTemplate(join(dir, 'serverless.yml'), { stage: 'local' });
    expect(() => t.get(['custom', 'unused'])).toThrow(/\$\{ssm:\/never\/read\} is not available locally/);
    expect(() => t.resource('Queue')).not.toThrow();
  });

  it('refuses a file that is not YAML', () => {
    expect(() => parseServerlessTemplate('a: [unclosed', 'broken.yml', { stage: 'local' })).toThrow(/broken.yml is not valid YAML/);
  });
});

describe('resources for the local servers', () => {
  it('turns a queue into CreateQueue attributes, with its redrive target by logical ID', () => {
    const t = loadServerlessTemplate(join(dir, 'serverless.yml'), { stage: 'local' });
    const spec = queueSpec(t, 'Queue');
    expect(spec).toMatchObject({
      name: 'svc-local-q.fifo',
      fifo: true,
      visibilityTimeoutSeconds: 42,
      redrive: { targetLogicalId: 'Dlq', maxReceiveCount: 3 },
      attributes: { FifoQueue: 'true', VisibilityTimeout: '42' },
      ignored: ['Tags'],
    });
  });

  it("evaluates !Ref and !GetAtt in a function's environment against the local resources", () => {
    const t = loadServerlessTemplate(join(dir, 'serverless.yml'), { stage: 'local' });
    expect(functionEnvironment(t, 'worker', refs)).toMatchObject({ QUEUE_URL: 'http://local/q', QUEUE_ARN: 'arn:local:q' });
    expect(() => evaluateIntrinsics({ Ref: 'Alarm' }, refs, 'X')).toThrow(/!Ref Alarm names nothing the local stack runs/);
  });

  it("reads the project's serverless.yml: the relay's FIFO queue redrives to its dead-letter queue, the table has the device key", () => {
    const t = loadServerlessTemplate(join(projectRoot(), 'serverless.yml'), { stage: 'local' });
    const relay = queueSpec(t, 'RelayQueue');
    const table = tableSpec(t, 'ConfigTable');
    expect(relay.fifo).toBe(true);
    expect(relay.redrive?.targetLogicalId).toBe('RelayDeadLetterQueue');
    expect(queueSpec(t, 'RelayDeadLetterQueue').fifo).toBe(true);
    expect(relay.visibilityTimeoutSeconds).toBeGreaterThanOrEqual(t.functionTimeoutSeconds('relay'));
    expect(table.input.KeySchema).toEqual([{ AttributeName: 'deviceId', KeyType: 'HASH' }]);
  });
});
