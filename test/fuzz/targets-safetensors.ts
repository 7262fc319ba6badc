/**
 * safetensors: valid files in every supported dtype (aligned and not), then structural mutations of the
 * header (absurd / negative / fractional / huge-rank shapes, overlapping, reversed, out-of-range and gapped
 * data_offsets, unknown dtypes, wrong JSON types, deep nesting, huge names), header lengths past the file /
 * with the high bit set / 2^53 / 2^64-1, byte-level mutations and pure random bytes.
 */
import { parseSafetensors, readSafetensorsHeader, SUPPORTED_DTYPES } from '../../src/io/safetensors';
import { Rng } from '../../src/util/rng';
import type { FuzzCase, Target } from './harness';
import {
  between,
  chance,
  concatBytes,
  deepArrayText,
  hostileValue,
  hugeString,
  misalign,
  mutateBytes,
  pick,
  randomBytes,
  toJson,
  utf8,
} from './mutate';

export const ST_FILE = 'fuzz-model.safetensors';

const BYTES: Record<string, number> = {
  F64: 8,
  F32: 4,
  F16: 2,
  BF16: 2,
  I64: 8,
  I32: 4,
  I16: 2,
  I8: 1,
  U8: 1,
  BOOL: 1,
};

interface Entry {
  dtype: unknown;
  shape: unknown;
  data_offsets: unknown;
}
export interface StFile {
  header: Record<string, unknown>;
  data: Uint8Array;
  /** Pad the header with spaces to a multiple of 8 (as writers do). */
  pad: boolean;
}

/** A valid file: 0..5 tensors of random supported dtypes and small shapes, laid out in a random order. */
export function validStFile(rng: Rng): StFile {
  const n = between(rng, 0, 5);
  const specs: { name: string; dtype: string; shape: number[]; bytes: number }[] = [];
  for (let i = 0; i < n; i++) {
    const dtype = pick(rng, SUPPORTED_DTYPES);
    const rank = between(rng, 0, 4);
    const shape = Array.from({ length: rank }, () => between(rng, chance(rng, 0.1) ? 0 : 1, 5));
    const numel = shape.reduce((a, b) => a * b, 1);
    specs.push({
      name: pick(rng, ['w', 'model.layers.0.mlp.up_proj.weight', 'é', 'a b', 'x\u0000y', `t${i}`]) + i,
      dtype,
      shape,
      bytes: numel * BYTES[dtype],
    });
  }
  const order = rng.permutation(n);
  const header: Record<string, unknown> = {};
  if (chance(rng, 0.4)) header.__metadata__ = { format: 'pt', note: pick(rng, ['', 'x', 'é😀']) };
  let off = 0;
  const begins = new Map<number, number>();
  for (const k of order) {
    begins.set(k, off);
    off += specs[k].bytes;
  }
  for (let k = 0; k < n; k++) {
    const s = specs[k];
    const b = begins.get(k)!;
    header[s.name] = { dtype: s.dtype, shape: s.shape, data_offsets: [b, b + s.bytes] } satisfies Entry;
  }
  const data = randomBytes(rng, off);
  // Booleans must be 0/1 to be meaningful; any byte is still accepted.
  return { header, data, pad: chance(rng, 0.7) };
}

export function encodeSt(f: StFile, headerText?: string, lengthOverride?: [number, number]): Uint8Array {
  let json = utf8(headerText ?? toJson(f.header));
  if (f.pad && json.length % 8 !== 0) json = concatBytes(json, new Uint8Array(8 - (json.length % 8)).fill(0x20));
  const out = new Uint8Array(8 + json.length + f.data.length);
  const dv = new DataView(out.buffer);
  const [lo, hi] = lengthOverride ?? [json.length % 2 ** 32, Math.floor(json.length / 2 ** 32)];
  dv.setUint32(0, lo >>> 0, true);
  dv.setUint32(4, hi >>> 0, true);
  out.set(json, 8);
  out.set(f.data, 8 + json.length);
  return out;
}

function tensorNames(f: StFile): string[] {
  return Object.keys(f.header).filter((k) => k !== '__metadata__');
}

/** Invariants of an accepted parse: float32 data whose length is the shape's product. */
export function checkParsed(r: unknown): string | null {
  const { tensors, metadata } = r as ReturnType<typeof parseSafetensors>;
  for (const [name, t] of tensors) {
    if (!(t.data instanceof Float32Array)) return `tensor "${name}" data is not a Float32Array`;
    if (!t.shape.every((d) => Number.isSafeInteger(d) && d >= 0))
      return `tensor "${name}" has shape ${JSON.stringify(t.shape)}`;
    const n = t.shape.reduce((a, b) => a * b, 1);
    if (n !== t.data.length) return `tensor "${name}" has ${t.data.length} values for shape ${JSON.stringify(t.shape)}`;
  }
  for (const v of Object.values(metadata)) if (typeof v !== 'string') return 'metadata value is not a string';
  return null;
}

function checkHeader(r: unknown, total: number): string | null {
  const h = r as ReturnType<typeof readSafetensorsHeader>;
  let covered = 0;
  for (const e of h.entries) {
    if (!(e.begin >= 0 && e.end >= e.begin)) return `entry "${e.name}" has offsets [${e.begin}, ${e.end}]`;
    covered += e.end - e.begin;
  }
  if (h.dataStart + covered !== total)
    return `entries cover ${covered} bytes of a ${total - h.dataStart}-byte data section`;
  return null;
}

/** Structural mutation of one header entry (or the header as a whole). */
function mutateHeader(rng: Rng, f: StFile): { what: string; size: number } {
  const names = tensorNames(f);
  const name = names.length ? pick(rng, names) : 'w';
  const cur = f.header[name];
  const entry = (
    typeof cur === 'object' && cur !== null && !Array.isArray(cur)
      ? cur
      : { dtype: 'F32', shape: [0], data_offsets: [0, 0] }
  ) as Entry;
  f.header[name] = entry;
  const offs = Array.isArray(entry.data_offsets) ? (entry.data_offsets as number[]) : [0, 0];
  const o =
    names.length > 1
      ? f.header[
          pick(
            rng,
            names.filter((n) => n !== name),
          )
        ]
      : null;
  const other = typeof o === 'object' && o !== null && !Array.isArray(o) ? (o as Entry) : null;
  switch (rng.int(12)) {
    case 0: {
      const shape = pick(rng, [
        [1e9, 1e9],
        [2 ** 31, 2 ** 31],
        [2 ** 53],
        [2 ** 53 + 2],
        [-1],
        [-1, -4],
        [1.5],
        [2, 0.5],
        ['2'],
        [null],
        [[2]],
        new Array(1000).fill(1),
        new Array(200).fill(2),
        new Array(100_000).fill(1),
        [],
        [0],
        [0, 1e15],
        [Infinity],
        [NaN],
        [1e308, 0],
      ]);
      entry.shape = shape;
      return {
        what: `"${name}".shape = ${shape.length > 8 ? `rank ${shape.length}` : JSON.stringify(shape)}`,
        size: shape.length * 2,
      };
    }
    case 1: {
      const d = pick(rng, [
        'F4',
        'f32',
        'FLOAT',
        '',
        'Q4_K',
        'F8_E4M3',
        'F8_E5M2',
        'U16',
        'U32',
        'U64',
        'C64',
        'toString',
        '__proto__',
        'constructor',
      ]);
      entry.dtype = d;
      return { what: `"${name}".dtype = ${JSON.stringify(d)}`, size: 16 };
    }
    case 2: {
      const [b, e] = [Number(offs[0]), Number(offs[1])];
      const o = pick(rng, [
        [e, b],
        [b, e + 1],
        [b - 1, e],
        [b + 1, e + 1],
        [0, 2 ** 53],
        [0, 2 ** 64],
        [-1, e],
        [b, -1],
        [b + 0.5, e + 0.5],
        [b],
        [b, e, e],
        ['0', String(e)],
        [b, e + f.data.length + 8],
        [2 ** 53, 2 ** 53 + (e - b)],
        null,
        {},
      ]);
      entry.data_offsets = o;
      return { what: `"${name}".data_offsets = ${JSON.stringify(o)} (was [${b}, ${e}])`, size: 16 };
    }
    case 3: {
      if (!other) break;
      // Overlap: same range as another tensor (sizes may even agree).
      entry.data_offsets = other.data_offsets;
      entry.shape = other.shape;
      entry.dtype = other.dtype;
      return { what: `"${name}" aliases another tensor's data`, size: 0 };
    }
    case 4: {
      const h = hostileValue(rng);
      const key = pick(rng, ['dtype', 'shape', 'data_offsets'] as const);
      entry[key] = h.value;
      return { what: `"${name}".${key} = ${h.what}`, size: h.size };
    }
    case 5: {
      const h = hostileValue(rng);
      f.header[name] = h.value;
      return { what: `"${name}" = ${h.what}`, size: h.size };
    }
    case 6: {
      const h = hostileValue(rng);
      f.header.__metadata__ = chance(rng, 0.5) ? h.value : { k: h.value };
      return { what: `__metadata__ ${chance(rng, 0.5) ? '' : '.k '}= ${h.what}`, size: h.size };
    }
    case 7: {
      const big = hugeString(rng, pick(rng, [1000, 100_000, 2 << 20]));
      f.header[big] = entry;
      delete f.header[name];
      return { what: `tensor name of ${big.length} chars`, size: big.length };
    }
    case 8: {
      // Many zero-size tensors (valid): the header dominates.
      const n = pick(rng, [1000, 1000, 20_000]);
      for (let i = 0; i < n; i++) f.header[`z${i}`] = { dtype: 'F32', shape: [0], data_offsets: [0, 0] };
      return { what: `${n} empty tensors`, size: n * 50 };
    }
    case 9: {
      delete f.header[name];
      return { what: `drop "${name}" (its bytes become a gap)`, size: 0 };
    }
    case 10: {
      f.header[''] = { dtype: 'F32', shape: [0], data_offsets: [0, 0] };
      return { what: 'empty tensor name', size: 0 };
    }
    default:
      break;
  }
  const [b, e] = [Number(offs[0]), Number(offs[1])];
  entry.data_offsets = [b + 1, e + 1];
  return { what: `"${name}" shifted by one byte`, size: 0 };
}

function stCase(label: string, bytes: Uint8Array, which: 'parse' | 'header', extra: Partial<FuzzCase> = {}): FuzzCase {
  return which === 'parse'
    ? {
        label,
        size: bytes.length,
        names: [ST_FILE],
        run: () => parseSafetensors(bytes, ST_FILE),
        check: checkParsed,
        ...extra,
      }
    : {
        label,
        size: bytes.length,
        names: [ST_FILE],
        run: () => readSafetensorsHeader(bytes, ST_FILE),
        check: (r) => checkHeader(r, bytes.length),
        ...extra,
      };
}

/** Header length prefixes as (lo, hi) u32 words. */
const LENGTHS: [number, number, string][] = [
  [0, 0, '0'],
  [1, 0, '1'],
  [0xffffffff, 0, '2^32-1'],
  [0, 1, '2^32'],
  [0, 0x200000, '2^53'],
  [1, 0x200000, '2^53+1'],
  [0xffffffff, 0xffffffff, '2^64-1 (-1 as i64)'],
  [0, 0x80000000, '2^63 (negative as i64)'],
  [0xfffffff8, 0xffffffff, '-8 as i64'],
  [100_000_001, 0, 'MAX_HEADER_BYTES+1'],
  [100_000_000, 0, 'MAX_HEADER_BYTES'],
];

function edges(which: 'parse' | 'header'): (() => FuzzCase)[] {
  const out: (() => FuzzCase)[] = [];
  // A fixed valid file with two tensors, for the deterministic cases.
  const base = (): StFile => ({
    header: {
      __metadata__: { format: 'pt' },
      a: { dtype: 'F32', shape: [2, 3], data_offsets: [0, 24] },
      b: { dtype: 'F16', shape: [4], data_offsets: [24, 32] },
    },
    data: new Uint8Array(32).fill(0x3c),
    pad: true,
  });
  out.push(() => stCase('valid two-tensor file', encodeSt(base()), which, { expect: 'accept' }));
  out.push(() =>
    stCase('valid, at an odd offset in a larger buffer', misalign(new Rng(7), encodeSt(base())), which, {
      expect: 'accept',
    }),
  );
  for (let n = 0; n <= 8; n++)
    out.push(() => stCase(`${n} bytes`, encodeSt(base()).slice(0, n), which, { expect: 'reject' }));
  for (const [lo, hi, what] of LENGTHS) {
    out.push(() => stCase(`header length ${what}`, encodeSt(base(), undefined, [lo, hi]), which, { expect: 'reject' }));
  }
  out.push(() => {
    const b = encodeSt(base());
    return stCase('header length one past the file', encodeSt(base(), undefined, [b.length - 8 + 1, 0]), which, {
      expect: 'reject',
    });
  });
  // Truncation at every offset of the small file.
  const full = encodeSt(base());
  for (let n = 9; n < full.length; n++)
    out.push(() => stCase(`truncated at ${n}/${full.length}`, full.slice(0, n), which, { expect: 'reject' }));
  const hostileHeaders: [string, string][] = [
    ['[]', 'header is an array'],
    ['null', 'header is null'],
    ['123', 'header is a number'],
    ['"x"', 'header is a string'],
    ['', 'empty header'],
    ['{', 'unterminated header'],
    ['\ufeff{}', 'BOM before the header (either way)'],
    ['{}\u0000', 'NUL after the header'],
    [deepArrayText(100_000), 'header is 100k nested arrays'],
    ['{"a":' + deepArrayText(100_000) + '}', 'entry is 100k nested arrays'],
    [
      '{"a":{"dtype":"F32","shape":' + deepArrayText(100_000) + ',"data_offsets":[0,0]}}',
      'shape is 100k nested arrays',
    ],
    [
      '{"a":{"dtype":"F32","shape":[0],"data_offsets":' + deepArrayText(100_000) + '}}',
      'data_offsets is 100k nested arrays',
    ],
    ['{"a":{"dtype":' + deepArrayText(100_000) + ',"shape":[0],"data_offsets":[0,0]}}', 'dtype is 100k nested arrays'],
    ['{"__metadata__":{"k":' + deepArrayText(100_000) + '}}', 'metadata value is 100k nested arrays'],
    ['{"__metadata__":' + deepArrayText(100_000) + '}', 'metadata is 100k nested arrays'],
    ['{"a":{"dtype":"F32","shape":[1000000000,1000000000],"data_offsets":[0,0]}}', 'shape [1e9,1e9] with no data'],
    [
      '{"a":{"dtype":"F32","shape":[' + new Array(100_000).fill(2).join(',') + '],"data_offsets":[0,0]}}',
      'rank 100000 shape of 2s',
    ],
    ['{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}}', 'negative shape'],
    ['{"a":{"dtype":"F32","shape":[0.5],"data_offsets":[0,0]}}', 'fractional shape'],
    ['{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,9007199254740993]}}', 'offset 2^53+1'],
    ['{"a":{"dtype":"XX","shape":[0],"data_offsets":[0,0]}}', 'unknown dtype'],
    ['{"a":{"dtype":"toString","shape":[0],"data_offsets":[0,0]}}', 'dtype "toString"'],
    ['{"a":{"dtype":"__proto__","shape":[0],"data_offsets":[0,0]}}', 'dtype "__proto__"'],
    ['{"__proto__":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}}', 'tensor named "__proto__" (valid)'],
    [
      '{"a":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
      'duplicate key, last wins (valid)',
    ],
    [
      '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}',
      'two tensors on the same bytes',
    ],
    ['{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}', 'reversed offsets'],
    [
      '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}',
      'overlapping offsets',
    ],
    ['{"a":"' + 'x'.repeat(4 << 20) + '"}', '4 MiB string entry'],
  ];
  for (const [text, what] of hostileHeaders) {
    out.push(() => {
      const data =
        what.startsWith('two tensors') || what.startsWith('duplicate') || what.startsWith('reversed')
          ? new Uint8Array(4)
          : what.startsWith('overlapping')
            ? new Uint8Array(8)
            : new Uint8Array(0);
      return stCase(what, encodeSt({ header: {}, data, pad: false }, text), which, {
        expect: what.endsWith('(valid)') ? 'accept' : what.endsWith('(either way)') ? undefined : 'reject',
      });
    });
  }
  return out;
}

function random(which: 'parse' | 'header') {
  return (rng: Rng): FuzzCase => {
    const r = rng.next();
    if (r < 0.08) {
      const n = pick(rng, [between(rng, 0, 16), between(rng, 0, 4096)]);
      const b = randomBytes(rng, n);
      if (n >= 8 && chance(rng, 0.5)) {
        new DataView(b.buffer).setUint32(0, between(rng, 0, n - 8), true);
        new DataView(b.buffer).setUint32(4, 0, true);
      }
      return stCase(`random ${n} bytes`, b, which);
    }
    const f = validStFile(rng);
    if (r < 0.15) {
      const b = encodeSt(f);
      return stCase(
        `valid ${tensorNames(f).length} tensors${f.pad ? '' : ' unpadded'}`,
        chance(rng, 0.5) ? misalign(rng, b) : b,
        which,
        { expect: 'accept' },
      );
    }
    if (r < 0.6) {
      const what: string[] = [];
      for (let k = between(rng, 1, 2); k > 0; k--) what.push(mutateHeader(rng, f).what);
      const b = encodeSt(f);
      return stCase(what.join('; '), chance(rng, 0.3) ? misalign(rng, b) : b, which);
    }
    if (r < 0.7) {
      const [lo, hi, what] = pick(rng, LENGTHS);
      return stCase(`header length ${what}`, encodeSt(f, undefined, [lo, hi]), which);
    }
    // Byte-level mutations, preferring the length prefix, the header/data boundary and tensor boundaries.
    const b = encodeSt(f);
    const dataStart = b.length - f.data.length;
    const offsets = [0, 4, 8, dataStart, b.length];
    for (const v of Object.values(f.header)) {
      const o = (v as Entry).data_offsets;
      if (Array.isArray(o)) offsets.push(dataStart + Number(o[0]), dataStart + Number(o[1]));
    }
    const m = mutateBytes(rng, b, offsets);
    return stCase(m.what, m.bytes, which);
  };
}

export const safetensorsTargets: Target[] = [
  { name: 'parseSafetensors', weight: 14, edges: edges('parse'), random: random('parse') },
  { name: 'readSafetensorsHeader', weight: 6, edges: edges('header'), random: random('header') },
];
