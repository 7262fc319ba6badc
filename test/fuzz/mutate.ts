/**
 * Seeded generators of hostile input for the parser fuzz suite: byte-level mutations (bit flips,
 * truncation at chosen offsets, insertions, overwritten integers), hostile JSON values (wrong types,
 * absurd numbers, prototype keys, deep nesting, huge strings) and JSON-tree mutations.
 * Everything draws from the project RNG so a case is reproducible from (seed, parser, index).
 */
import type { Rng } from '../../src/util/rng';

const encoder = new TextEncoder();
export const utf8 = (s: string): Uint8Array => encoder.encode(s);

export function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[rng.int(xs.length)];
}

export function chance(rng: Rng, p: number): boolean {
  return rng.next() < p;
}

/** Integer in [lo, hi] inclusive. */
export function between(rng: Rng, lo: number, hi: number): number {
  return lo + rng.int(hi - lo + 1);
}

export function randomBytes(rng: Rng, n: number): Uint8Array {
  const out = new Uint8Array(n);
  for (let i = 0; i < n; i += 4) {
    const w = rng.nextUint32();
    out[i] = w & 0xff;
    if (i + 1 < n) out[i + 1] = (w >>> 8) & 0xff;
    if (i + 2 < n) out[i + 2] = (w >>> 16) & 0xff;
    if (i + 3 < n) out[i + 3] = w >>> 24;
  }
  return out;
}

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** The same bytes at a random (often odd) byte offset inside a larger buffer: parsers must not assume alignment. */
export function misalign(rng: Rng, b: Uint8Array): Uint8Array {
  const pad = between(rng, 1, 7);
  const host = new Uint8Array(b.length + pad + between(rng, 0, 5));
  host.set(b, pad);
  return host.subarray(pad, pad + b.length);
}

/** Interesting 32-bit signed integers. */
export const INT32_EDGES = [
  0,
  1,
  -1,
  2,
  3,
  7,
  8,
  255,
  256,
  65535,
  65536,
  1e6,
  2 ** 24,
  2 ** 30,
  2 ** 31 - 1,
  -(2 ** 31),
  -2,
  -256,
];

export interface Mutated {
  bytes: Uint8Array;
  what: string;
}

/**
 * One random byte-level mutation. `offsets` are structurally interesting positions (field boundaries):
 * truncations and integer overwrites prefer them (and their neighbours).
 */
export function mutateBytesOnce(rng: Rng, b: Uint8Array, offsets: number[] = []): Mutated {
  const at = (): number => {
    if (offsets.length > 0 && chance(rng, 0.7)) {
      const o = pick(rng, offsets) + pick(rng, [0, 0, 0, -1, 1, -4, 4, -8, 8]);
      return Math.max(0, Math.min(b.length, o));
    }
    return rng.int(b.length + 1);
  };
  const kind = rng.int(9);
  switch (kind) {
    case 0: {
      // bit flips
      const out = b.slice();
      const k = b.length === 0 ? 0 : between(rng, 1, 8);
      for (let i = 0; i < k; i++) out[rng.int(out.length)] ^= 1 << rng.int(8);
      return { bytes: out, what: `flip ${k} bits` };
    }
    case 1: {
      const n = at();
      return { bytes: b.slice(0, n), what: `truncate at ${n}` };
    }
    case 2: {
      const n = pick(rng, [1, 2, 3, 4, 7, 8, 64, between(rng, 1, 4096)]);
      const tail = chance(rng, 0.5) ? new Uint8Array(n) : randomBytes(rng, n);
      return { bytes: concatBytes(b, tail), what: `append ${n} bytes` };
    }
    case 3: {
      const p = at();
      const ins = randomBytes(rng, between(rng, 1, 64));
      return { bytes: concatBytes(b.subarray(0, p), ins, b.subarray(p)), what: `insert ${ins.length} bytes at ${p}` };
    }
    case 4: {
      const p = at();
      const n = between(rng, 1, 64);
      return {
        bytes: concatBytes(b.subarray(0, p), b.subarray(Math.min(b.length, p + n))),
        what: `delete ${n} bytes at ${p}`,
      };
    }
    case 5: {
      // overwrite a little-endian int32 with an edge value
      const out = b.slice();
      if (out.length < 4) return { bytes: out, what: 'noop (too short for int32)' };
      const p = Math.min(at(), out.length - 4);
      const v = pick(rng, INT32_EDGES);
      new DataView(out.buffer).setInt32(p, v, true);
      return { bytes: out, what: `int32 ${v} at ${p}` };
    }
    case 6: {
      const out = b.slice();
      const n = b.length === 0 ? 0 : between(rng, 1, 16);
      for (let i = 0; i < n; i++)
        out[rng.int(out.length)] = pick(rng, [0x00, 0xff, 0x7f, 0x80, 0x22, 0x5c, 0x7b, 0x5b, 0xc0, 0xed, 0xf4, 0xfe]);
      return { bytes: out, what: `set ${n} bytes` };
    }
    case 7: {
      // copy a chunk over another place (duplicated records, overlapping structure)
      const out = b.slice();
      if (out.length < 2) return { bytes: out, what: 'noop' };
      const n = between(rng, 1, Math.min(256, out.length));
      const from = rng.int(out.length - n + 1);
      const to = rng.int(out.length - n + 1);
      out.copyWithin(to, from, from + n);
      return { bytes: out, what: `copy ${n} bytes ${from}->${to}` };
    }
    default: {
      const p = at();
      const junk = pick(rng, [
        [0xef, 0xbb, 0xbf],
        [0x00],
        [0xff, 0xfe],
        [0xc3],
        [0xed, 0xa0, 0x80],
        [0xf8, 0x88, 0x80, 0x80, 0x80],
        [0x0d],
        [0x0a],
        [0x22],
      ]);
      return {
        bytes: concatBytes(b.subarray(0, p), Uint8Array.from(junk), b.subarray(p)),
        what: `insert [${junk.map((x) => x.toString(16))}] at ${p}`,
      };
    }
  }
}

export function mutateBytes(rng: Rng, b: Uint8Array, offsets: number[] = [], max = 3): Mutated {
  let cur = b;
  const what: string[] = [];
  const n = between(rng, 1, max);
  for (let i = 0; i < n; i++) {
    const m = mutateBytesOnce(rng, cur, offsets);
    cur = m.bytes;
    what.push(m.what);
  }
  return { bytes: cur, what: what.join(', ') };
}

// ---------------------------------------------------------------------------------------------------------
// Hostile values

export const deepArrayText = (depth: number): string => '['.repeat(depth + 1) + ']'.repeat(depth + 1);
export const deepObjectText = (depth: number): string => '{"a":'.repeat(depth + 1) + '{}' + '}'.repeat(depth + 1);

/** JSON text of the deep values below, by identity: JSON.stringify itself would overflow the stack on them. */
const deepText = new WeakMap<object, string>();

/** A nested array `depth` levels deep, built without recursion. */
export function deepArray(depth: number): unknown {
  let v: unknown[] = [];
  for (let i = 0; i < depth; i++) v = [v];
  deepText.set(v, deepArrayText(depth));
  return v;
}

export function deepObject(depth: number): unknown {
  let v: Record<string, unknown> = {};
  for (let i = 0; i < depth; i++) v = { a: v };
  deepText.set(v, deepObjectText(depth));
  return v;
}

/** A value made by deepArray / deepObject (its inner levels are not registered: never take them apart). */
export const isDeep = (v: unknown): boolean => typeof v === 'object' && v !== null && deepText.has(v);

/** JSON.stringify that also serialises the deep values made by deepArray / deepObject (without recursing into them). */
export function toJson(v: unknown, space?: number): string {
  const raw: string[] = [];
  const text =
    JSON.stringify(
      v,
      (_k, x: unknown) => {
        if (typeof x === 'object' && x !== null) {
          const t = deepText.get(x);
          if (t !== undefined) {
            raw.push(t);
            return `\u0001${raw.length - 1}\u0001`;
          }
        }
        return x;
      },
      space,
    ) ?? 'null';
  return raw.length === 0 ? text : text.replace(/"\\u0001(\d+)\\u0001"/g, (_m, i: string) => raw[Number(i)]);
}

/** A string of about `bytes` bytes (ASCII, two-byte, NULs or astral). */
export function hugeString(rng: Rng, bytes: number): string {
  const unit = pick(rng, ['x', 'ab ', 'é', '\u0000', '😀', '"\\', '\ufffd']);
  return unit.repeat(Math.max(1, Math.floor(bytes / utf8(unit).length)));
}

export interface Hostile {
  value: unknown;
  what: string;
  /** Approximate size as JSON text, for the memory bound. */
  size: number;
}

/** Sentinel: delete the key instead of setting it. */
export const DELETE = Symbol('delete');

const SMALL_VALUES: [unknown, string][] = [
  [null, 'null'],
  [true, 'true'],
  [false, 'false'],
  [0, '0'],
  [-0, '-0'],
  [-1, '-1'],
  [1, '1'],
  [2, '2'],
  [3, '3'],
  [0.5, '0.5'],
  [1.5, '1.5'],
  [-1.5, '-1.5'],
  [1e9, '1e9'],
  [1e15, '1e15'],
  [2 ** 31, '2^31'],
  [2 ** 31 - 1, '2^31-1'],
  [2 ** 32, '2^32'],
  [2 ** 40, '2^40'],
  [2 ** 53, '2^53'],
  [2 ** 53 + 2, '2^53+2'],
  [Number.MAX_SAFE_INTEGER, 'MAX_SAFE'],
  [1e308, '1e308'],
  [-1e308, '-1e308'],
  [5e-324, '5e-324'],
  [NaN, 'NaN'],
  [Infinity, 'Infinity'],
  [-Infinity, '-Infinity'],
  ['', '""'],
  ['8', '"8"'],
  ['x', '"x"'],
  ['\u0000', '"\\0"'],
  ['\ud800', 'lone surrogate'],
  ['\ufeff', 'BOM'],
  ['constructor', '"constructor"'],
  ['__proto__', '"__proto__"'],
  ['toString', '"toString"'],
  ['hasOwnProperty', '"hasOwnProperty"'],
  ['valueOf', '"valueOf"'],
  [[], '[]'],
  [[1], '[1]'],
  [[8, 8], '[8,8]'],
  [[[]], '[[]]'],
  [['a'], '["a"]'],
  [{}, '{}'],
  [{ a: 1 }, '{a:1}'],
  [{ type: 'x' }, '{type:"x"}'],
  [JSON.parse('{"__proto__": {"polluted": 1}}'), '{__proto__:{...}}'],
];

/** A hostile JSON-ish value; `big` allows deep nesting and multi-MB strings/arrays. */
export function hostileValue(rng: Rng, big = true): Hostile {
  const r = rng.next();
  if (!big || r < 0.88) {
    const [value, what] = pick(rng, SMALL_VALUES);
    // Fresh copies of containers so mutations of one case never leak into another.
    const v = typeof value === 'object' && value !== null ? structuredClone(value) : value;
    return { value: v, what, size: 16 };
  }
  if (r < 0.92) {
    const depth = pick(rng, [1000, 10_000, 100_000]);
    return chance(rng, 0.5)
      ? { value: deepArray(depth), what: `array nested ${depth} deep`, size: 2 * depth }
      : { value: deepObject(depth), what: `object nested ${depth} deep`, size: 6 * depth };
  }
  if (r < 0.96) {
    const n = pick(rng, [100_000, 1 << 20, 2 << 20, 4 << 20]);
    const s = hugeString(rng, n);
    return { value: s, what: `string of ${s.length} chars`, size: n + 2 };
  }
  const n = pick(rng, [10_000, 100_000, 300_000]);
  const el = pick(rng, [0, 1, 'a', null]);
  return { value: new Array(n).fill(el), what: `array of ${n} × ${JSON.stringify(el)}`, size: n * 4 };
}

// ---------------------------------------------------------------------------------------------------------
// JSON trees

type Container = Record<string, unknown> | unknown[];

/** Paths to every node of a JSON tree (breadth-first, at most `limit`), as [parent, key] pairs. */
function slots(root: unknown, limit = 5000): { parent: Container; key: string | number; path: string }[] {
  const out: { parent: Container; key: string | number; path: string }[] = [];
  const queue: { v: unknown; path: string }[] = [{ v: root, path: '' }];
  for (let q = 0; q < queue.length && out.length < limit; q++) {
    const { v, path } = queue[q];
    // Deep hostile values are leaves: mutating inside them would leave toJson a chain it cannot print.
    if (typeof v === 'object' && v !== null && deepText.has(v)) continue;
    if (Array.isArray(v)) {
      v.forEach((c, i) => {
        out.push({ parent: v, key: i, path: `${path}[${i}]` });
        queue.push({ v: c, path: `${path}[${i}]` });
      });
    } else if (typeof v === 'object' && v !== null) {
      for (const [k, c] of Object.entries(v)) {
        out.push({ parent: v as Record<string, unknown>, key: k, path: `${path}.${k}` });
        queue.push({ v: c, path: `${path}.${k}` });
      }
    }
  }
  return out;
}

/**
 * Mutate a JSON tree in place at a random node: replace it with a hostile value, delete it, rename its key,
 * nudge a number, wrap it in an array, or stringify it. `prefer` paths (regexps on ".a.b[0]" paths) get
 * picked more often. Returns a description and the extra input size added.
 */
export function mutateTree(rng: Rng, root: unknown, prefer: RegExp[] = [], big = true): { what: string; size: number } {
  const all = slots(root);
  if (all.length === 0) return { what: 'noop (no nodes)', size: 0 };
  let cands = all;
  if (prefer.length > 0 && chance(rng, 0.6)) {
    const re = pick(rng, prefer);
    const m = all.filter((s) => re.test(s.path));
    if (m.length > 0) cands = m;
  }
  const s = pick(rng, cands);
  const cur = Array.isArray(s.parent) ? s.parent[s.key as number] : s.parent[s.key as string];
  const set = (v: unknown) => {
    if (Array.isArray(s.parent)) s.parent[s.key as number] = v;
    else s.parent[s.key as string] = v;
  };
  const op = rng.int(10);
  if (op < 5) {
    const h = hostileValue(rng, big);
    set(h.value);
    return { what: `${s.path} = ${h.what}`, size: h.size };
  }
  if (op === 5) {
    if (Array.isArray(s.parent)) s.parent.splice(s.key as number, 1);
    else delete s.parent[s.key as string];
    return { what: `delete ${s.path}`, size: 0 };
  }
  if (op === 6 && !Array.isArray(s.parent)) {
    const k = pick(rng, ['', '__proto__', 'constructor', s.key + ' ', String(s.key).toUpperCase(), '\u0000']);
    delete s.parent[s.key as string];
    s.parent[k] = cur;
    return { what: `rename ${s.path} -> ${JSON.stringify(k)}`, size: 0 };
  }
  if (op === 7 && typeof cur === 'number') {
    const v = pick(rng, [cur + 1, cur - 1, -cur, cur * 2, cur / 2, cur * 1e9, cur + 0.5]);
    set(v);
    return { what: `${s.path} = ${v}`, size: 0 };
  }
  if (op === 8) {
    set([cur]);
    return { what: `wrap ${s.path} in []`, size: 2 };
  }
  if (op === 9 && typeof cur !== 'string') {
    const text = toJson(cur);
    set(text);
    return { what: `stringify ${s.path}`, size: text.length };
  }
  const h = hostileValue(rng, big);
  set(h.value);
  return { what: `${s.path} = ${h.what}`, size: h.size };
}

/** JSON text of a tree as a hostile file would hold it (indent, BOM, CRLF variants). */
export function jsonText(rng: Rng, v: unknown): { text: string; what: string } {
  let text = toJson(v, chance(rng, 0.5) ? 2 : undefined);
  const what: string[] = [];
  if (chance(rng, 0.1)) {
    text = '\ufeff' + text;
    what.push('BOM');
  }
  if (chance(rng, 0.1)) {
    text = text.replace(/\n/g, '\r\n');
    what.push('CRLF');
  }
  return { text, what: what.join(' ') };
}
