/**
 * Reading a handler's settings without stopping at the first wrong one. Each check runs; each ERR_CONFIG it throws
 * is kept; at the end one ERR_CONFIG lists every problem, so a deployment is fixed in one round instead of one round
 * per variable. Errors that are not ERR_CONFIG (a defect) pass through at once.
 *
 * One problem is thrown as it was (same message, same `field`); several become one error whose message joins
 * theirs with "; " and whose `field` lists their variables, comma separated. A variable named twice (two loaders
 * both checking IOTCORE_PROJECT, say) is reported once.
 *
 * @example
 * const check = new SettingsCheck();
 * const project = check.read(() => required(env, 'IOTCORE_PROJECT'));
 * const port = check.read(() => integer(env, 'IOTCORE_MQTT_PORT', 8883, 1, 65535));
 * check.throwIfAny(); // ERR_CONFIG "2 settings are wrong: IOTCORE_PROJECT must be set; IOTCORE_MQTT_PORT must be ..."
 * // from here on, project and port are defined
 */
import { isRelayError, RelayError } from './errors.js';

export class SettingsCheck {
  private readonly problems: RelayError[] = [];

  /** `read()`'s value, or undefined when it threw an ERR_CONFIG (kept for `throwIfAny`). */
  read<T>(read: () => T): T | undefined {
    try {
      return read();
    } catch (e) {
      if (!isRelayError(e) || e.code !== 'ERR_CONFIG') throw e;
      this.add(e);
      return undefined;
    }
  }

  /** Notes a problem found without a throw; a combined error of another check is taken apart into its problems. */
  add(problem: RelayError): void {
    const parts = combinedParts.get(problem);
    if (parts !== undefined) {
      for (const part of parts) this.add(part);
      return;
    }
    const duplicate = this.problems.some((p) => (problem.field !== undefined && p.field === problem.field) || p.message === problem.message);
    if (!duplicate) this.problems.push(problem);
  }

  get ok(): boolean {
    return this.problems.length === 0;
  }

  /** Throws the one ERR_CONFIG that lists every problem noted, if any. */
  throwIfAny(): void {
    const error = combinedConfigError(this.problems);
    if (error !== undefined) throw error;
  }
}

/** Undefined for no problem; the problem itself for one; one ERR_CONFIG listing them all for several. */
export function combinedConfigError(problems: readonly RelayError[]): RelayError | undefined {
  if (problems.length === 0) return undefined;
  if (problems.length === 1) return problems[0];
  const fields = problems.flatMap((p) => (p.field === undefined ? [] : [p.field]));
  const combined = new RelayError('ERR_CONFIG', `${problems.length} settings are wrong: ${problems.map((p) => p.message).join('; ')}`, {
    ...(fields.length > 0 ? { field: fields.join(',') } : {}),
  });
  combinedParts.set(combined, [...problems]);
  return combined;
}

/** The problems a combined error was made of, so a loader that uses another loader reports them flat. */
const combinedParts = new WeakMap<RelayError, RelayError[]>();
