/**
 * The import graph of src/ and the layering rule it must follow (docs/architecture.md).
 *
 * Layers, lowest first: util → engine → io → data → train → store → worker | cli → ui. A file may import its own
 * folder and any lower layer, never a higher one or a sibling at the same height (worker and cli never import each
 * other). The page (ui) sees the engine only through worker/api.ts; the worker entry it starts with
 * `new Worker(new URL('../worker/engine.worker.ts', import.meta.url))` is a separate bundle, not an import.
 * No file may take part in an import cycle, type-only imports included.
 *
 * `npx tsx tools/import-graph.ts` prints the violations (exit 1) or "import graph: N files, N imports, clean".
 */
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Height of each folder of src/; higher layers may import lower ones. */
export const LAYERS: Readonly<Record<string, number>> = {
  util: 0,
  engine: 1,
  io: 2,
  data: 3,
  train: 4,
  store: 5,
  worker: 6,
  cli: 6,
  ui: 7,
};

/** The only files of other layers the page may import. */
export const UI_MAY_IMPORT = ['src/worker/api.ts'];

export interface ImportEdge {
  from: string;
  to: string;
  /** `import type` / `export type`: erased at build time, but still an arrow between layers. */
  typeOnly: boolean;
  /** `new URL('…', import.meta.url)`: an asset or worker entry, not a module import. */
  url: boolean;
}

const EXTENSIONS = ['.ts', '.tsx', '/index.ts', '/index.tsx'];

function listSources(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const p = path.join(dir, name);
    if (statSync(p).isDirectory()) out.push(...listSources(p));
    else if (/\.tsx?$/.test(name)) out.push(p);
  }
  return out;
}

function resolveSpecifier(root: string, fromFile: string, spec: string): string {
  const base = path.resolve(path.dirname(path.join(root, fromFile)), spec);
  if (existsSync(base) && statSync(base).isFile()) return path.relative(root, base);
  for (const ext of EXTENSIONS) if (existsSync(base + ext)) return path.relative(root, base + ext);
  return path.relative(root, base);
}

const IMPORT_RE =
  /(?:^|[\s;])(import|export)\s+(type\s+)?(?:[\w*{}\s,$]*?\s+from\s+)?['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)|new\s+URL\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*,\s*import\.meta\.url/g;

/** Every relative import of every .ts/.tsx file under root/src (paths relative to root, with '/' separators). */
export function importGraph(root: string): { files: string[]; edges: ImportEdge[] } {
  const files = listSources(path.join(root, 'src')).map((f) => path.relative(root, f).split(path.sep).join('/'));
  const edges: ImportEdge[] = [];
  for (const from of files) {
    const text = readFileSync(path.join(root, from), 'utf8').replace(/\/\*[\s\S]*?\*\/|(^|[^:'"`])\/\/[^\n]*/g, '$1');
    for (const m of text.matchAll(IMPORT_RE)) {
      const spec = m[3] ?? m[4] ?? m[5];
      const to = resolveSpecifier(root, from, spec).split(path.sep).join('/');
      edges.push({ from, to, typeOnly: Boolean(m[2]), url: m[5] !== undefined });
    }
  }
  return { files, edges };
}

const layerOf = (file: string): string | null => {
  const m = /^src\/([^/]+)\//.exec(file);
  return m ? m[1] : null;
};

/** Imports that break the layering rule, each as a sentence. */
export function layerViolations(edges: ImportEdge[]): string[] {
  const out: string[] = [];
  for (const e of edges) {
    const a = layerOf(e.from);
    const b = layerOf(e.to);
    if (a === null) continue;
    if (!(a in LAYERS)) {
      out.push(`${e.from}: folder src/${a} is not a layer (add it to LAYERS in tools/import-graph.ts)`);
      continue;
    }
    if (b === null || a === b) continue; // files outside src (models/catalog.json) or the same folder
    if (!(b in LAYERS)) continue; // reported for the importing side
    if (a === 'ui') {
      if (UI_MAY_IMPORT.includes(e.to)) continue;
      if (e.url && e.to === 'src/worker/engine.worker.ts') continue;
      out.push(`${e.from} imports ${e.to}: the page may import only ${UI_MAY_IMPORT.join(', ')}`);
      continue;
    }
    if (LAYERS[b] >= LAYERS[a]) {
      out.push(`${e.from} imports ${e.to}: ${a} (layer ${LAYERS[a]}) may not import ${b} (layer ${LAYERS[b]})`);
    }
  }
  return out;
}

/** Import cycles between files (module imports, type-only included; `new URL` entries excluded). */
export function importCycles(files: string[], edges: ImportEdge[]): string[][] {
  const next = new Map<string, string[]>(files.map((f) => [f, []]));
  for (const e of edges) if (!e.url && next.has(e.to)) next.get(e.from)!.push(e.to);
  // Tarjan's strongly connected components; each component of more than one file (or a self-import) is a cycle.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of next.get(v)!) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        comp.push(w);
      } while (w !== v);
      if (comp.length > 1 || next.get(v)!.includes(v)) cycles.push(comp.sort());
    }
  };
  for (const f of files) if (!idx.has(f)) visit(f);
  return cycles;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
  const { files, edges } = importGraph(root);
  const problems = [
    ...layerViolations(edges),
    ...importCycles(files, edges).map((c) => `import cycle: ${c.join(' ↔ ')}`),
  ];
  for (const p of problems) console.log(p);
  console.log(
    problems.length
      ? `import graph: ${problems.length} problem(s)`
      : `import graph: ${files.length} files, ${edges.length} imports, clean`,
  );
  process.exitCode = problems.length ? 1 : 0;
}
