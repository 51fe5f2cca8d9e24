/**
 * The deployment's resources as the local servers take them: the SQS queues as CreateQueue attributes, the table
 * as a CreateTable input, and the CloudFormation intrinsics of the functions' environment (`!Ref RelayQueue`)
 * evaluated against the local resources. Every value comes from serverless.yml; nothing here repeats one.
 *
 * @example
 * const queue = queueSpec(template, 'RelayQueue');
 * // { name: 'iotcore-relay-local-relay.fifo', fifo: true, visibilityTimeoutSeconds: 360,
 * //   redrive: { targetLogicalId: 'RelayDeadLetterQueue', maxReceiveCount: 5 }, attributes: {...} }
 */
import type { CreateTableCommandInput } from '@aws-sdk/client-dynamodb';
import { RelayError } from '../lib/errors.js';
import { isObject, type ServerlessTemplate, type TemplateValue } from './serverless-template.js';

export interface QueueSpec {
  logicalId: string;
  name: string;
  fifo: boolean;
  /** SQS's default (30 s) when the template sets none. */
  visibilityTimeoutSeconds: number;
  redrive?: { targetLogicalId: string; maxReceiveCount: number };
  /** CreateQueue attributes, as strings, RedrivePolicy excepted (it needs the target's local ARN). */
  attributes: Record<string, string>;
  /** Properties the local server has no use for (tags, encryption, ...). */
  ignored: string[];
}

/** CloudFormation property -> SQS attribute, for the properties that are plain values. */
const QUEUE_ATTRIBUTES: Record<string, string> = {
  FifoQueue: 'FifoQueue',
  ContentBasedDeduplication: 'ContentBasedDeduplication',
  DeduplicationScope: 'DeduplicationScope',
  FifoThroughputLimit: 'FifoThroughputLimit',
  VisibilityTimeout: 'VisibilityTimeout',
  MessageRetentionPeriod: 'MessageRetentionPeriod',
  DelaySeconds: 'DelaySeconds',
  MaximumMessageSize: 'MaximumMessageSize',
  ReceiveMessageWaitTimeSeconds: 'ReceiveMessageWaitTimeSeconds',
  SqsManagedSseEnabled: 'SqsManagedSseEnabled',
};
const SQS_DEFAULT_VISIBILITY_SECONDS = 30;

export function queueSpec(template: ServerlessTemplate, logicalId: string): QueueSpec {
  const { Type, Properties: p } = template.resource(logicalId);
  if (Type !== 'AWS::SQS::Queue') throw fail(template, `${logicalId} is of type ${Type}, not AWS::SQS::Queue`);
  if (typeof p.QueueName !== 'string') throw fail(template, `${logicalId}.QueueName must be set (the local stack names its queues after it)`);
  const attributes: Record<string, string> = {};
  const ignored: string[] = [];
  let redrive: QueueSpec['redrive'];
  for (const [property, value] of Object.entries(p)) {
    if (property === 'QueueName') continue;
    const attribute = QUEUE_ATTRIBUTES[property];
    if (attribute !== undefined) {
      attributes[attribute] = scalar(template, `${logicalId}.${property}`, value);
    } else if (property === 'RedrivePolicy') {
      redrive = redrivePolicy(template, logicalId, value);
    } else {
      ignored.push(property);
    }
  }
  const fifo = attributes.FifoQueue === 'true';
  if (fifo !== p.QueueName.endsWith('.fifo')) throw fail(template, `${logicalId}: a FIFO queue's name ends in .fifo, and only a FIFO queue's`);
  const visibility = attributes.VisibilityTimeout === undefined ? SQS_DEFAULT_VISIBILITY_SECONDS : Number(attributes.VisibilityTimeout);
  if (!Number.isInteger(visibility) || visibility < 0) throw fail(template, `${logicalId}.VisibilityTimeout must be a whole number of seconds (got ${attributes.VisibilityTimeout})`);
  return {
    logicalId,
    name: p.QueueName,
    fifo,
    visibilityTimeoutSeconds: visibility,
    ...(redrive ? { redrive } : {}),
    attributes,
    ignored,
  };
}

function redrivePolicy(template: ServerlessTemplate, logicalId: string, value: TemplateValue): QueueSpec['redrive'] {
  // CloudFormation takes the policy as an object or as its JSON text.
  const policy = typeof value === 'string' ? (JSON.parse(value) as TemplateValue) : value;
  if (!isObject(policy)) throw fail(template, `${logicalId}.RedrivePolicy must be a mapping`);
  const target = policy.deadLetterTargetArn;
  const getAtt = isObject(target) ? target['Fn::GetAtt'] : undefined;
  if (!Array.isArray(getAtt) || getAtt[1] !== 'Arn' || typeof getAtt[0] !== 'string') {
    throw fail(template, `${logicalId}.RedrivePolicy.deadLetterTargetArn must be !GetAtt <queue>.Arn of a queue in this template`);
  }
  const maxReceiveCount = Number(policy.maxReceiveCount);
  if (!Number.isInteger(maxReceiveCount) || maxReceiveCount < 1) throw fail(template, `${logicalId}.RedrivePolicy.maxReceiveCount must be a positive integer`);
  return { targetLogicalId: getAtt[0], maxReceiveCount };
}

export interface TableSpec {
  logicalId: string;
  input: CreateTableCommandInput;
  /** The TTL attribute, when the template enables TTL (the local server does not expire items). */
  ttlAttribute?: string;
  ignored: string[];
}

export function tableSpec(template: ServerlessTemplate, logicalId: string): TableSpec {
  const { Type, Properties: p } = template.resource(logicalId);
  if (Type !== 'AWS::DynamoDB::Table') throw fail(template, `${logicalId} is of type ${Type}, not AWS::DynamoDB::Table`);
  if (typeof p.TableName !== 'string') throw fail(template, `${logicalId}.TableName must be set`);
  const used = new Set(['TableName', 'AttributeDefinitions', 'KeySchema', 'BillingMode', 'ProvisionedThroughput', 'GlobalSecondaryIndexes', 'LocalSecondaryIndexes', 'TimeToLiveSpecification']);
  const billingMode = p.BillingMode === 'PROVISIONED' ? 'PROVISIONED' : 'PAY_PER_REQUEST';
  const input = {
    TableName: p.TableName,
    AttributeDefinitions: p.AttributeDefinitions,
    KeySchema: p.KeySchema,
    BillingMode: billingMode,
    ...(billingMode === 'PROVISIONED' ? { ProvisionedThroughput: p.ProvisionedThroughput } : {}),
    ...(p.GlobalSecondaryIndexes !== undefined ? { GlobalSecondaryIndexes: p.GlobalSecondaryIndexes } : {}),
    ...(p.LocalSecondaryIndexes !== undefined ? { LocalSecondaryIndexes: p.LocalSecondaryIndexes } : {}),
  } as unknown as CreateTableCommandInput;
  if (!Array.isArray(p.AttributeDefinitions) || !Array.isArray(p.KeySchema)) {
    throw fail(template, `${logicalId} needs AttributeDefinitions and KeySchema lists`);
  }
  const ttl = p.TimeToLiveSpecification;
  const ttlAttribute = isObject(ttl) && ttl.Enabled === true && typeof ttl.AttributeName === 'string' ? ttl.AttributeName : undefined;
  return {
    logicalId,
    input,
    ...(ttlAttribute !== undefined ? { ttlAttribute } : {}),
    ignored: Object.keys(p).filter((k) => !used.has(k)),
  };
}

/** What `!Ref` and `!GetAtt` mean for the resources that exist locally. */
export interface LocalReferences {
  ref(logicalId: string): string | undefined;
  getAtt(logicalId: string, attribute: string): string | undefined;
}

/**
 * Evaluates the intrinsics that can appear in a function's environment. A reference to something the local stack
 * does not run (an alarm, the HTTP API's ID) is an error naming it, rather than a silent empty variable.
 */
export function evaluateIntrinsics(value: TemplateValue, refs: LocalReferences, where: string): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  if (value === null) return '';
  if (isObject(value)) {
    const keys = Object.keys(value);
    if (keys.length === 1) {
      const [key] = keys as [string];
      const arg = value[key]!;
      if (key === 'Ref' && typeof arg === 'string') {
        const resolved = refs.ref(arg);
        if (resolved === undefined) throw new RelayError('ERR_CONFIG', `${where}: !Ref ${arg} names nothing the local stack runs`);
        return resolved;
      }
      if (key === 'Fn::GetAtt' && Array.isArray(arg) && typeof arg[0] === 'string' && typeof arg[1] === 'string') {
        const resolved = refs.getAtt(arg[0], arg[1]);
        if (resolved === undefined) throw new RelayError('ERR_CONFIG', `${where}: !GetAtt ${arg[0]}.${arg[1]} names nothing the local stack runs`);
        return resolved;
      }
      if (key === 'Fn::Sub' && typeof arg === 'string') {
        return arg.replace(/\$\{([A-Za-z0-9]+)(?:\.([A-Za-z0-9]+))?\}/g, (match, id: string, attribute: string | undefined) => {
          const resolved = attribute === undefined ? refs.ref(id) : refs.getAtt(id, attribute);
          if (resolved === undefined) throw new RelayError('ERR_CONFIG', `${where}: ${match} names nothing the local stack runs`);
          return resolved;
        });
      }
    }
  }
  throw new RelayError('ERR_CONFIG', `${where}: ${JSON.stringify(value)} is not a value the local stack can evaluate`);
}

/** The environment of a function with its intrinsics evaluated. */
export function functionEnvironment(template: ServerlessTemplate, functionName: string, refs: LocalReferences): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [name, value] of Object.entries(template.functionEnvironment(functionName))) {
    env[name] = evaluateIntrinsics(value, refs, `functions.${functionName}.environment.${name}`);
  }
  return env;
}

function scalar(template: ServerlessTemplate, where: string, value: TemplateValue): string {
  if (typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return String(value);
  throw fail(template, `${where} must be a plain value`);
}

function fail(template: ServerlessTemplate, message: string): RelayError {
  return new RelayError('ERR_CONFIG', `${template.path}: resources.Resources.${message}`);
}

