/**
 * The route table is the one docs/emulator-admin-api.md documents: the same methods on the same paths, no more and no
 * fewer. What each route answers is tested over HTTP in test/emulator/admin-api.test.ts.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ADMIN_ROUTES } from '../../../emulator/admin-api/routes.js';
import { Router } from '../../../emulator/admin-api/router.js';

const DOC = readFileSync(new URL('../../../docs/emulator-admin-api.md', import.meta.url), 'utf8');

/** The rows of the "Routes" table, as `METHOD path` with the doc's `...` prefix and query strings expanded away. */
function documentedRoutes(): string[] {
  const section = DOC.slice(DOC.indexOf('## Routes'), DOC.indexOf('\n## ', DOC.indexOf('## Routes') + 1));
  return [...section.matchAll(/^\| (GET|POST|PATCH|DELETE) \| `([^`]+)` \|/gm)].map(([, method, path]) => {
    const full = path!.replace(/^\.\.\.\/registries/, '/v1/projects/{p}/locations/{l}/registries').replace(/\?.*$/, '');
    return `${method} ${full}`;
  });
}

/** The table's entries, with the doc's one-letter parameter names. */
function servedRoutes(): string[] {
  const short: Record<string, string> = { project: 'p', location: 'l', registry: 'r', device: 'd' };
  return ADMIN_ROUTES.map((r) => `${r.method} ${r.path.replace(/\{(\w+)\}/g, (_, name: string) => `{${short[name] ?? name}}`)}`);
}

describe('ADMIN_ROUTES', () => {
  it('serves exactly the documented routes', () => {
    const documented = documentedRoutes();
    expect(documented).toHaveLength(20);
    expect([...servedRoutes()].sort()).toEqual([...documented].sort());
  });

  it('has one entry per method and path', () => {
    expect(() => new Router(ADMIN_ROUTES)).not.toThrow();
  });

  it('names a body message exactly on the routes that read one', () => {
    const withBody = ADMIN_ROUTES.filter((r) => r.body !== undefined).map((r) => `${r.method} ${r.path.split('/').at(-1)}`);
    expect(withBody).toEqual([
      'POST devices',
      'PATCH {device}',
      'POST {device}:modifyCloudToDeviceConfig',
      'POST {device}:sendCommandToDevice',
      'POST {registry}:bindDeviceToGateway',
      'POST {registry}:unbindDeviceFromGateway',
      'PATCH faults',
    ]);
  });
});
