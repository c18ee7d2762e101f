/**
 * No two modules of src/ import each other in a circle: the browser
 * runtime's counterpart of `server/layers.py --objects` (the hub's C
 * modules) and `django/tests/test_layers.py` (the Django app's). Every
 * module reference of a source file counts, type-only ones too (`import
 * type`, `export type ... from`, `import('./x.js').T`): they vanish from the
 * emitted JavaScript, but the two modules still need each other, and a type
 * shared both ways belongs in a module below both (as `socket.ts` holds
 * the socket surface the client and the SSE transport share).
 */

import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import { test } from 'node:test';
import ts from 'typescript';

/** importing file -> imported file -> the places and names that tie them */
type Edges = Map<string, Map<string, string[]>>;

/** The module references of one file: [specifier, what it takes, line]. */
function references(file: string, text: string): [string, string, number][] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const out: [string, string, number][] = [];
  const add = (spec: ts.Node, what: string): void => {
    if (ts.isStringLiteralLike(spec)) {
      out.push([spec.text, what, source.getLineAndCharacterOfPosition(spec.getStart()).line + 1]);
    }
  };
  const names = (clause: ts.ImportClause | ts.NamedExportBindings | undefined, whole: string): string => {
    if (clause === undefined) return whole;
    if (ts.isImportClause(clause)) {
      const parts: string[] = [];
      if (clause.name) parts.push(clause.name.text);
      const bindings = clause.namedBindings;
      if (bindings && ts.isNamespaceImport(bindings)) parts.push(`* as ${bindings.name.text}`);
      if (bindings && ts.isNamedImports(bindings)) parts.push(...bindings.elements.map((e) => e.name.text));
      return parts.join(', ') || whole;
    }
    if (ts.isNamespaceExport(clause)) return `* as ${clause.name.text}`;
    return clause.elements.map((e) => e.name.text).join(', ');
  };
  const visit = (node: ts.Node): void => {
    if (ts.isImportDeclaration(node)) {
      add(node.moduleSpecifier, names(node.importClause, '(side effects)'));
    } else if (ts.isExportDeclaration(node) && node.moduleSpecifier) {
      add(node.moduleSpecifier, names(node.exportClause, '*'));
    } else if (ts.isImportEqualsDeclaration(node) && ts.isExternalModuleReference(node.moduleReference)) {
      add(node.moduleReference.expression, node.name.text);
    } else if (ts.isImportTypeNode(node) && ts.isLiteralTypeNode(node.argument)) {
      add(node.argument.literal, node.qualifier ? node.qualifier.getText(source) : 'import()');
    } else if (ts.isCallExpression(node) && node.expression.kind === ts.SyntaxKind.ImportKeyword && node.arguments[0]) {
      add(node.arguments[0], 'import()');
    }
    ts.forEachChild(node, visit);
  };
  visit(source);
  return out;
}

/** The import graph of a directory's files (name -> text): relative references only. */
function graph(files: Map<string, string>): Edges {
  const edges: Edges = new Map();
  for (const [file, text] of files) {
    for (const [spec, what, line] of references(file, text)) {
      if (!spec.startsWith('./')) continue; // packages, and nothing of src/ lies above it
      const stem = spec.slice(2).replace(/\.(js|ts)$/, '');
      const target = [`${stem}.ts`, `${stem}.tsx`, `${stem}/index.ts`].find((f) => files.has(f));
      assert.ok(target, `${file}:${line}: '${spec}' names no file of the directory`);
      if (target === file) continue;
      const to = edges.get(file) ?? new Map<string, string[]>();
      edges.set(file, to);
      to.set(target, [...(to.get(target) ?? []), `${what} (line ${line})`]);
    }
  }
  return edges;
}

/** The strongly connected components of more than one file (Tarjan's), each sorted. */
function circles(edges: Edges): string[][] {
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const found: string[][] = [];
  const strong = (v: string): void => {
    index.set(v, index.size);
    low.set(v, index.get(v)!);
    stack.push(v);
    on.add(v);
    for (const w of [...(edges.get(v)?.keys() ?? [])].sort()) {
      if (!index.has(w)) {
        strong(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (on.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!));
      }
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        on.delete(w);
        component.push(w);
      } while (w !== v);
      if (component.length > 1) found.push(component.sort());
    }
  };
  for (const v of [...edges.keys()].sort()) if (!index.has(v)) strong(v);
  return found.sort();
}

function describe(edges: Edges, circle: string[]): string {
  const lines = [`circle: ${circle.join(' ')}`];
  for (const a of circle) {
    for (const [b, uses] of edges.get(a) ?? []) {
      if (circle.includes(b)) lines.push(`  ${a} -> ${b}: ${uses.join(', ')}`);
    }
  }
  return lines.join('\n');
}

function sources(): Map<string, string> {
  const dir = new URL('../src/', import.meta.url);
  const files = new Map<string, string>();
  for (const name of readdirSync(dir).sort()) {
    if (/\.tsx?$/.test(name)) files.set(name, readFileSync(new URL(name, dir), 'utf8'));
  }
  return files;
}

test('layers: no modules of src/ import each other in a circle (type-only imports included)', () => {
  const files = sources();
  const edges = graph(files);
  assert.ok(files.size > 10 && edges.size > 10, 'the sources of src/ were not read');
  const found = circles(edges);
  assert.deepEqual(found, [], 'modules of src/ import each other in a circle; give what they share one home ' +
    `in a module below both:\n${found.map((c) => describe(edges, c)).join('\n')}`);
});

test('layers: a circle of type-only imports is found, and what ties it named', () => {
  const files = new Map([
    ['a.ts', "import { b } from './b.js';\nexport type A = number;\nexport const a = b;\n"],
    ['b.ts', "export const b = 1;\nexport type { C } from './c.js';\n"],
    ['c.ts', "import type { A } from './a.js';\nexport type C = A;\n"],
    ['d.ts', "import { a } from './a.js';\nimport React from 'react';\nexport const d = [a, React];\n"],
  ]);
  const edges = graph(files);
  assert.deepEqual(circles(edges), [['a.ts', 'b.ts', 'c.ts']]);
  assert.match(describe(edges, ['a.ts', 'b.ts', 'c.ts']), /c\.ts -> a\.ts: A \(line 1\)/);
});

test('layers: import() types, dynamic imports and re-exports count; a chain is no circle', () => {
  const chain = new Map([
    ['x.ts', "export * from './y.js';\n"],
    ['y.ts', "export const y = () => import('./z.js');\n"],
    ['z.ts', 'export type Z = string;\n'],
  ]);
  assert.deepEqual(circles(graph(chain)), []);
  chain.set('z.ts', "export type Z = import('./x.js').Y;\n");
  assert.deepEqual(circles(graph(chain)), [['x.ts', 'y.ts', 'z.ts']]);
});
