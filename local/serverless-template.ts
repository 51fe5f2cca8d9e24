/**
 * Reads serverless.yml the way the local stack needs it: the queues, the table, the functions' environment,
 * timeouts and events. The local stack builds its resources from this file instead of repeating its values, so a
 * change to the deployment (a longer visibility timeout, another route) is what `npm start` runs too.
 *
 * Two layers of syntax are handled:
 * - CloudFormation's short-form tags (`!Ref`, `!GetAtt`, `!Sub`, `!If`, `!Not`, `!Equals`, ...) are read into their
 *   long form (`{ Ref: 'X' }`, `{ 'Fn::GetAtt': ['X', 'Arn'] }`), as CloudFormation itself would see them;
 * - the framework's variables (`${self:...}`, `${sls:stage}`, `${opt:...}`, `${param:...}`, `${env:...}`) are
 *   resolved, only in the parts that are read, so a variable source the local stack cannot serve (`${ssm:...}`,
 *   say) elsewhere in the file does not stop it. `${AWS::Region}` and other CloudFormation pseudo parameters
 *   inside `!Sub` are left alone: they belong to CloudFormation, not to the framework.
 *
 * @example
 * const template = loadServerlessTemplate('serverless.yml', { stage: 'local' });
 * template.resource('RelayQueue'); // { Type: 'AWS::SQS::Queue', Properties: { FifoQueue: true, ... } }
 * template.functionNames();        // ['relay', 'ingest', 'config', 'poll']
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve as resolvePath } from 'node:path';
import { RelayError } from '../lib/errors.js';

/** A value as YAML and the CloudFormation tags produce it. */
export type TemplateValue = string | number | boolean | null | TemplateValue[] | { [key: string]: TemplateValue };
export type TemplateObject = { [key: string]: TemplateValue };

interface YamlTypeOptions {
  kind: 'scalar' | 'sequence' | 'mapping';
  construct: (data: unknown) => unknown;
}
interface JsYaml {
  Type: new (tag: string, options: YamlTypeOptions) => object;
  DEFAULT_SCHEMA: { extend(types: object[]): object };
  load(text: string, options: { schema: object; filename?: string }): unknown;
}
// js-yaml (a devDependency, also the framework's own parser) ships no type declarations; only the calls above are used.
const yaml = createRequire(import.meta.url)('js-yaml') as JsYaml;

/**
 * Short-form tag -> long-form key. Each tag may be written on a scalar, a sequence or a mapping
 * (`!GetAtt A.Arn` and `!GetAtt [A, Arn]` are the same), so each gets a type per node kind.
 */
const INTRINSICS: Record<string, string> = {
  Ref: 'Ref',
  GetAtt: 'Fn::GetAtt',
  Sub: 'Fn::Sub',
  If: 'Fn::If',
  Not: 'Fn::Not',
  Equals: 'Fn::Equals',
  And: 'Fn::And',
  Or: 'Fn::Or',
  Condition: 'Condition',
  Join: 'Fn::Join',
  Select: 'Fn::Select',
  Split: 'Fn::Split',
  FindInMap: 'Fn::FindInMap',
  ImportValue: 'Fn::ImportValue',
  Base64: 'Fn::Base64',
  GetAZs: 'Fn::GetAZs',
  Cidr: 'Fn::Cidr',
};

function cloudFormationSchema(): object {
  const types: object[] = [];
  for (const [tag, key] of Object.entries(INTRINSICS)) {
    for (const kind of ['scalar', 'sequence', 'mapping'] as const) {
      types.push(
        new yaml.Type(`!${tag}`, {
          kind,
          construct: (data) => {
            // `!GetAtt Resource.Attribute` is the one scalar form whose long form is a list.
            if (tag === 'GetAtt' && typeof data === 'string') {
              const dot = data.indexOf('.');
              return { [key]: dot < 0 ? [data] : [data.slice(0, dot), data.slice(dot + 1)] };
            }
            return { [key]: data ?? '' };
          },
        }),
      );
    }
  }
  return yaml.DEFAULT_SCHEMA.extend(types);
}

export interface TemplateOptions {
  /** `${sls:stage}` and `${opt:stage}`. */
  stage: string;
  /** `${opt:region}`; defaults to the provider's region expression. */
  region?: string;
  /** `--param` values; they win over `params.<stage>` and `params.default`. */
  params?: Readonly<Record<string, string>>;
  /** `${env:NAME}`; defaults to an empty environment, so the local stack does not depend on the user's shell. */
  env?: Readonly<Record<string, string | undefined>>;
}

/** `${source:address, fallback}`, without nested braces (inner variables are resolved first). */
const VARIABLE = /\$\{([^${}]+)\}/g;
const FRAMEWORK_SOURCES = new Set(['self', 'sls', 'opt', 'param', 'env']);
/** The resolver gives up on a chain of variables longer than this (a reference cycle). */
const MAX_DEPTH = 20;

export class ServerlessTemplate {
  readonly path: string;
  readonly stage: string;
  private readonly raw: TemplateObject;
  private readonly options: TemplateOptions;

  constructor(path: string, raw: TemplateObject, options: TemplateOptions) {
    this.path = path;
    this.raw = raw;
    this.options = options;
    this.stage = options.stage;
  }

  /** The service name, resolved. */
  get service(): string {
    return this.string(['service']);
  }

  /** Any part of the file, with the framework's variables resolved (CloudFormation intrinsics are kept). */
  get(path: readonly string[]): TemplateValue | undefined {
    const value = lookup(this.raw, path);
    return value === undefined ? undefined : this.resolve(value, 0, path.join('.'));
  }

  string(path: readonly string[]): string {
    const value = this.get(path);
    if (typeof value !== 'string') throw this.fail(`${path.join('.')} must be a string`);
    return value;
  }

  /** `resources.Resources.<logicalId>`, resolved; throws when absent. */
  resource(logicalId: string): { Type: string; Properties: TemplateObject } {
    const value = this.get(['resources', 'Resources', logicalId]);
    if (!isObject(value) || typeof value.Type !== 'string') throw this.fail(`resources.Resources.${logicalId} is missing or has no Type`);
    const properties = value.Properties ?? {};
    if (!isObject(properties)) throw this.fail(`resources.Resources.${logicalId}.Properties must be a mapping`);
    return { Type: value.Type, Properties: properties };
  }

  functionNames(): string[] {
    const functions = lookup(this.raw, ['functions']);
    return isObject(functions) ? Object.keys(functions) : [];
  }

  /** `functions.<name>`, resolved; throws when absent. */
  function(name: string): TemplateObject {
    const value = this.get(['functions', name]);
    if (!isObject(value)) throw this.fail(`functions.${name} is missing`);
    return value;
  }

  /** The function's timeout in seconds: its own, else the provider's, else the framework's default of 6. */
  functionTimeoutSeconds(name: string): number {
    const own = this.function(name).timeout ?? this.get(['provider', 'timeout']) ?? 6;
    const seconds = Number(own);
    if (!Number.isFinite(seconds) || seconds <= 0) throw this.fail(`functions.${name}.timeout must be a positive number`);
    return seconds;
  }

  /** The environment Lambda would give the function: the provider's, overridden by the function's own. */
  functionEnvironment(name: string): Record<string, TemplateValue> {
    const provider = this.get(['provider', 'environment']) ?? {};
    const own = this.function(name).environment ?? {};
    if (!isObject(provider) || !isObject(own)) throw this.fail(`the environment of ${name} must be a mapping`);
    return { ...provider, ...own };
  }

  /** The function's events of one kind (`httpApi`, `sqs`, `schedule`), in file order. */
  functionEvents(name: string, kind: string): TemplateValue[] {
    const events = this.function(name).events ?? [];
    if (!Array.isArray(events)) throw this.fail(`functions.${name}.events must be a list`);
    return events.filter((e): e is TemplateObject => isObject(e) && kind in e).map((e) => e[kind]!);
  }

  private param(name: string): string | undefined {
    const given = this.options.params?.[name];
    if (given !== undefined) return given;
    for (const set of [this.stage, 'default']) {
      const value = lookup(this.raw, ['params', set, name]);
      if (value !== undefined) return String(this.resolve(value, 1, `params.${set}.${name}`));
    }
    return undefined;
  }

  private resolve(value: TemplateValue, depth: number, where: string): TemplateValue {
    if (depth > MAX_DEPTH) throw this.fail(`${where}: variables nest too deep (a reference cycle?)`);
    if (typeof value === 'string') return this.resolveString(value, depth, where);
    if (Array.isArray(value)) return value.map((v, i) => this.resolve(v, depth, `${where}[${i}]`));
    if (isObject(value)) {
      const out: TemplateObject = {};
      for (const [k, v] of Object.entries(value)) out[k] = this.resolve(v, depth, `${where}.${k}`);
      return out;
    }
    return value;
  }

  private resolveString(text: string, depth: number, where: string): TemplateValue {
    let current = text;
    // Innermost first: `${opt:stage, ${self:custom.stage}}` resolves its fallback before the outer variable.
    for (let round = 0; round < MAX_DEPTH; round++) {
      let whole: TemplateValue | undefined;
      let changed = false;
      const next = current.replace(VARIABLE, (match, body: string) => {
        const value = this.variable(body.trim(), depth, where);
        if (value === undefined) return match;
        changed = true;
        // A string that is one variable and nothing else takes the variable's type (`timeout: ${self:x}` is a number).
        if (match === current) whole = value;
        return typeof value === 'string' ? value : JSON.stringify(value);
      });
      if (whole !== undefined) return whole;
      if (!changed) return next;
      current = next;
    }
    throw this.fail(`${where}: variables nest too deep`);
  }

  /** The value of one variable; undefined leaves the text as it is (a CloudFormation `${AWS::Region}`). */
  private variable(body: string, depth: number, where: string): TemplateValue | undefined {
    const { address, fallback } = splitFallback(body);
    const file = /^file\(([^)]+)\)(?::(.+))?$/.exec(address);
    if (file !== null) {
      const value = this.fileVariable(file[1]!.trim(), file[2]?.trim(), where);
      if (value !== undefined) return value;
      if (fallback !== undefined) return literal(fallback);
      throw this.fail(`${where}: \${${address}} has no value and no fallback`);
    }
    const colon = address.indexOf(':');
    const source = colon < 0 ? '' : address.slice(0, colon);
    if (!FRAMEWORK_SOURCES.has(source) || address.startsWith(`${source}::`)) {
      // Framework sources are lower case (`ssm:`, `cf(...)`, `s3:`); CloudFormation's are `AWS::X` or a logical ID.
      if (/^[a-z][\w-]*(?:\(|:(?!:))/.test(address)) throw this.fail(`${where}: variable \${${address}} is not available locally`);
      return undefined;
    }
    const key = address.slice(colon + 1).trim();
    let value: TemplateValue | undefined;
    switch (source) {
      case 'self': {
        const found = lookup(this.raw, key === '' ? [] : key.split('.'));
        value = found === undefined ? undefined : this.resolve(found, depth + 1, key);
        break;
      }
      case 'sls':
        if (key !== 'stage') throw this.fail(`${where}: \${sls:${key}} is not available locally`);
        value = this.stage;
        break;
      case 'opt':
        value = key === 'stage' ? this.stage : key === 'region' ? this.options.region : undefined;
        break;
      case 'param':
        value = this.param(key);
        break;
      case 'env':
        value = this.options.env?.[key];
        break;
    }
    if (value !== undefined && value !== null) return value;
    if (fallback !== undefined) return literal(fallback);
    throw this.fail(`${where}: \${${address}} has no value and no fallback`);
  }

  /**
   * `${file(./x.json)}`, `${file(./x.yml):a.b}`, `${file(./x.cjs):name}`: a file next to serverless.yml, whole or
   * one property. A JavaScript file is loaded with require(), as the framework does; an exported function is called
   * with the options, and must answer at once (the framework would also await a promise; nothing here needs that).
   */
  private fileVariable(relativePath: string, property: string | undefined, where: string): TemplateValue | undefined {
    const path = resolvePath(dirname(this.path), relativePath);
    let content: unknown;
    try {
      if (/\.(c?js)$/.test(path)) content = createRequire(import.meta.url)(path);
      else if (/\.json$/.test(path)) content = JSON.parse(readFileSync(path, 'utf8'));
      else content = yaml.load(readFileSync(path, 'utf8'), { schema: cloudFormationSchema(), filename: path });
    } catch (e) {
      throw this.fail(`${where}: ${relativePath} cannot be read: ${(e as Error).message}`);
    }
    const pick = (value: unknown): unknown => (typeof value === 'function' ? (value as (o: unknown) => unknown)({ options: { stage: this.stage, region: this.options.region } }) : value);
    let value = pick(content);
    for (const key of property === undefined ? [] : property.split('.')) {
      value = isObject(value as TemplateValue) ? pick((value as TemplateObject)[key]) : undefined;
    }
    if (value instanceof Promise) throw this.fail(`${where}: ${relativePath} answers with a promise, which the local stack does not wait for`);
    return value === undefined ? undefined : this.resolve(value as TemplateValue, 1, where);
  }

  private fail(message: string): RelayError {
    return new RelayError('ERR_CONFIG', `${this.path}: ${message}`);
  }
}

export function loadServerlessTemplate(path: string, options: TemplateOptions): ServerlessTemplate {
  const text = readFileSync(path, 'utf8');
  return parseServerlessTemplate(text, path, options);
}

export function parseServerlessTemplate(text: string, path: string, options: TemplateOptions): ServerlessTemplate {
  let raw: unknown;
  try {
    raw = yaml.load(text, { schema: cloudFormationSchema(), filename: path });
  } catch (e) {
    throw new RelayError('ERR_CONFIG', `${path} is not valid YAML: ${(e as Error).message}`, { cause: e });
  }
  if (!isObject(raw as TemplateValue)) throw new RelayError('ERR_CONFIG', `${path} must be a YAML mapping`);
  return new ServerlessTemplate(path, raw as TemplateObject, options);
}

export function isObject(value: TemplateValue | undefined): value is TemplateObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function lookup(root: TemplateValue, path: readonly string[]): TemplateValue | undefined {
  let node: TemplateValue | undefined = root;
  for (const key of path) {
    if (Array.isArray(node) && /^\d+$/.test(key)) node = node[Number(key)];
    else if (isObject(node)) node = node[key];
    else return undefined;
  }
  return node;
}

/** Splits `address, fallback` at the first comma outside quotes. */
function splitFallback(body: string): { address: string; fallback?: string } {
  let quote: string | undefined;
  for (let i = 0; i < body.length; i++) {
    const c = body[i]!;
    if (quote !== undefined) {
      if (c === quote) quote = undefined;
    } else if (c === '"' || c === "'") quote = c;
    else if (c === ',') return { address: body.slice(0, i).trim(), fallback: body.slice(i + 1).trim() };
  }
  return { address: body.trim() };
}

/** A fallback: a quoted string, a number, a boolean, or bare text. */
function literal(text: string): TemplateValue {
  const quoted = /^(['"])(.*)\1$/s.exec(text);
  if (quoted) return quoted[2]!;
  if (/^-?\d+(\.\d+)?$/.test(text)) return Number(text);
  if (text === 'true' || text === 'false') return text === 'true';
  return text;
}
