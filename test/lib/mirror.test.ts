/**
 * Every lib module with logic has its own test file at the mirrored path: lib/a/b.ts → test/lib/a/b.test.ts.
 *
 * A module has logic unless, once its types are removed, it is nothing but imports, re-exports and constants
 * bound to plain literals (a number, a string, true, false or null). Type-only modules, barrels that only
 * re-export, and modules of literal limits are exempt by that rule; anything else needs its test file.
 */
import { readdirSync, readFileSync, existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { transformSync } from 'esbuild';
import { describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('../../', import.meta.url));

const STRING = String.raw`"(?:[^"\\]|\\.)*"`;
const LITERAL = String.raw`(?:-?[\d.e+]+|${STRING}|!0|!1|null|void 0)`;
const NAME = String.raw`[\w$]+`;
/** One statement esbuild prints, minified, for an import, a re-export, an export list or a literal constant. */
const STATEMENT_WITHOUT_LOGIC = new RegExp(
  [
    String.raw`import(?:[^;"]*from)?${STRING}`,
    String.raw`export(?:\*|\*as ${NAME}|\{[^}]*\})from${STRING}`,
    String.raw`export\{[^}]*\}`,
    String.raw`(?:export )?(?:const|let|var) ${NAME}=${LITERAL}(?:,${NAME}=${LITERAL})*`,
  ]
    .map((statement) => `(?:${statement})`)
    .join('|'),
);
const WITHOUT_LOGIC = new RegExp(String.raw`^(?:(?:${STATEMENT_WITHOUT_LOGIC.source});?)*$`);

function hasLogic(typescript: string): boolean {
  const { code } = transformSync(typescript, {
    loader: 'ts',
    format: 'esm',
    minifyWhitespace: true,
    minifySyntax: true,
    tsconfigRaw: { compilerOptions: { verbatimModuleSyntax: true } },
  });
  return !WITHOUT_LOGIC.test(code.trim());
}

function typescriptFiles(dir: string): string[] {
  return readdirSync(join(root, dir), { withFileTypes: true }).flatMap((entry) => {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory()) return typescriptFiles(path);
    return entry.name.endsWith('.ts') && !entry.name.endsWith('.d.ts') ? [path] : [];
  });
}

const mirrorOf = (module: string): string => `test/${module.replace(/\.ts$/, '.test.ts')}`;

describe('the logic test', () => {
  it.each([
    ['an interface', 'export interface A { b: string }\nexport type C = A | undefined;', false],
    ['a barrel', "export { a, type B } from './a.js';\nexport * from './c.js';\nexport * as d from './d.js';", false],
    ['an imported name exported again', "import { a } from './a.js';\nexport { a };", false],
    ['literal constants', "/** limits */\nexport const A = 256 * 1024;\nexport const B = 'x;y', C = true;\nconst D = null;\nexport { D };", false],
    ['nothing at all', '// a comment\n', false],
    ['a function', 'export function a(): number { return 1; }', true],
    ['an arrow function', 'export const a = (b: number) => b + 1;', true],
    ['a class', 'export class A {}', true],
    ['an enum', 'export enum A { B, C }', true],
    ['an object with a method', 'export const a = { b() { return 1; } };', true],
    ['a constant computed by a call', "export const a = Symbol('a');", true],
    ['a constant that is an object', "export const a = { b: 'c' };", true],
    ['a statement run at import', "import { a } from './a.js';\na();", true],
    ['a re-export beside a function', "export { a } from './a.js';\nexport function b() {}", true],
  ])('in %s: %s', (_what, source, logic) => {
    expect(hasLogic(source)).toBe(logic);
  });
});

describe('lib modules', () => {
  const modules = typescriptFiles('lib').sort();
  const withLogic = modules.filter((module) => hasLogic(readFileSync(join(root, module), 'utf8')));

  it('are found', () => {
    expect(modules).toContain('lib/errors.ts');
    expect(withLogic).toContain('lib/errors.ts');
    expect(withLogic).not.toContain('lib/keys/key-source.ts');
  });

  it('with logic each have a test file at the mirrored path', () => {
    const missing = withLogic.filter((module) => !existsSync(join(root, mirrorOf(module))));
    expect(missing.map((module) => `${module} has no ${mirrorOf(module)}`)).toEqual([]);
  });
});
