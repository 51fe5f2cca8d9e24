/**
 * The emulator's modules import each other without a cycle. Type-only imports count: a module that needs another's
 * type to compile depends on it as much as one that calls it, and a bundler's metafile would not show them (it
 * erases them first).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const EMULATOR = fileURLToPath(new URL('../../emulator/', import.meta.url));

type Graph = ReadonlyMap<string, readonly string[]>;

function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') && !e.name.endsWith('.d.ts') ? [join(dir, e.name)] : [],
  );
}

/**
 * The specifiers a module imports: `import`/`export ... from` statements (type-only and multi-line ones too), bare
 * `import '...'`, and `import('...')`. Statements start a line, so the examples in doc comments (` * import ...`) are
 * not taken for imports.
 */
function importSpecifiers(source: string): string[] {
  const patterns = [/^\s*(?:import|export)\b[^;]*?\bfrom\s*['"]([^'"]+)['"]/gm, /^\s*import\s*['"]([^'"]+)['"]/gm, /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g];
  return patterns.flatMap((p) => [...source.matchAll(p)].map((m) => ({ at: m.index, name: m[1]! }))).sort((a, b) => a.at - b.at).map((m) => m.name);
}

/** Each file's relative imports that stay inside `root`, as paths relative to it. */
function importGraph(root: string): Graph {
  const graph = new Map<string, string[]>();
  for (const file of sourceFiles(root)) {
    const targets = importSpecifiers(readFileSync(file, 'utf8'))
      .filter((name) => name.startsWith('.'))
      .map((name) => resolve(dirname(file), name.replace(/\.js$/, '.ts')))
      .filter((target) => !relative(root, target).startsWith('..'))
      .map((target) => relative(root, target));
    graph.set(relative(root, file), [...new Set(targets)].sort());
  }
  return graph;
}

/** Every strongly connected set of two or more modules, or one that imports itself; each sorted, as a cycle's members. */
function cycles(graph: Graph): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const found: string[][] = [];
  let next = 0;
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) !== index.get(v)) return;
    const members: string[] = [];
    let w: string;
    do {
      w = stack.pop()!;
      onStack.delete(w);
      members.push(w);
    } while (w !== v);
    if (members.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(members.sort());
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return found;
}

describe('cycle finder', () => {
  it('finds a cycle through several modules, and a module importing itself', () => {
    const graph = new Map([
      ['a.ts', ['b.ts']],
      ['b.ts', ['c.ts']],
      ['c.ts', ['a.ts', 'd.ts']],
      ['d.ts', []],
      ['e.ts', ['e.ts']],
    ]);
    expect(cycles(graph)).toEqual([['a.ts', 'b.ts', 'c.ts'], ['e.ts']]);
  });

  it('finds none in a graph where two modules share an import', () => {
    expect(cycles(new Map([['a.ts', ['b.ts', 'c.ts']], ['b.ts', ['c.ts']], ['c.ts', []]]))).toEqual([]);
  });

  it('reads type-only, multi-line, bare and dynamic imports and re-exports, not the examples in comments', () => {
    const source = [
      '/**',
      " * import { example } from './example.js';",
      ' */',
      "import type { X } from './x.js';",
      'import {',
      '  a,',
      '  type B,',
      "} from './ab.js';",
      "import './side-effect.js';",
      "export { y } from './y.js';",
      "export type * from './types.js';",
      "const z = await import('./z.js');",
      "import { w } from 'node:w';",
    ].join('\n');
    expect(importSpecifiers(source)).toEqual(['./x.js', './ab.js', './side-effect.js', './y.js', './types.js', './z.js', 'node:w']);
  });
});

describe('emulator/', () => {
  it('has no import cycle', () => {
    const graph = importGraph(EMULATOR);
    // The walk reached the modules whose imports made the cycle once: the graph is the real one.
    expect(graph.get('connection.ts')).toContain('gateway.ts');
    expect(cycles(graph)).toEqual([]);
  });
});
