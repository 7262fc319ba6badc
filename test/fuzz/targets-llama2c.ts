/**
 * llama2.c legacy checkpoints (parseLlama2cCheckpoint): tiny valid files (tied with and without the RoPE
 * tables, untied with the classifier) built in bytes, then header fields set to edge values, the "ak42"
 * magic, files of the wrong size (truncated at every array boundary, extended), bit flips, random bytes.
 */
import { parseLlama2cCheckpoint } from '../../src/io/llama2c';
import { Rng } from '../../src/util/rng';
import type { FuzzCase, Target } from './harness';
import { between, chance, concatBytes, INT32_EDGES, misalign, mutateBytes, pick, randomBytes } from './mutate';

export const L2C_FILE = 'fuzz-stories.bin';

export interface L2cDims {
  D: number;
  H: number;
  L: number;
  nHeads: number;
  nKv: number;
  V: number;
  seq: number;
  rope: boolean;
}

/** Byte size of a checkpoint with these dims and the byte offsets of its array boundaries. */
export function l2cLayout(d: L2cDims): { bytes: number; offsets: number[] } {
  const hd = d.D / d.nHeads;
  const kv = d.nKv * hd;
  const V = Math.abs(d.V);
  const arrays = [
    V * d.D,
    d.L * d.D,
    d.L * d.D * d.D,
    d.L * kv * d.D,
    d.L * kv * d.D,
    d.L * d.D * d.D,
    d.L * d.D,
    d.L * d.H * d.D,
    d.L * d.D * d.H,
    d.L * d.H * d.D,
    d.D,
  ];
  if (d.rope || d.V < 0) arrays.push((d.seq * hd) / 2, (d.seq * hd) / 2);
  if (d.V < 0) arrays.push(V * d.D);
  const offsets = [0, 4, 8, 12, 16, 20, 24, 28];
  let o = 28;
  for (const n of arrays) offsets.push((o += 4 * n));
  return { bytes: o, offsets };
}

export function buildL2c(rng: Rng, d: L2cDims): { bytes: Uint8Array; offsets: number[] } {
  const { bytes: n, offsets } = l2cLayout(d);
  const out = new Uint8Array(n);
  const dv = new DataView(out.buffer);
  [d.D, d.H, d.L, d.nHeads, d.nKv, d.V, d.seq].forEach((v, i) => dv.setInt32(4 * i, v, true));
  const f = new Float32Array(out.buffer, 28, (n - 28) / 4);
  for (let i = 0; i < f.length; i++) f[i] = rng.normal(0, 0.1);
  return { bytes: out, offsets };
}

export function randomDims(rng: Rng): L2cDims {
  const D = pick(rng, [2, 4, 8, 16]);
  const nHeads = pick(
    rng,
    [1, 2, 4, 8].filter((h) => D % h === 0 && (D / h) % 2 === 0),
  );
  const nKv = pick(
    rng,
    [1, 2, 4, 8].filter((k) => nHeads % k === 0),
  );
  return {
    D,
    H: pick(rng, [1, 4, 8, 12, 32]),
    L: between(rng, 1, 3),
    nHeads,
    nKv,
    V: between(rng, 1, 40) * (chance(rng, 0.3) ? -1 : 1),
    seq: between(rng, 1, 16),
    rope: chance(rng, 0.6),
  };
}

function checkL2c(r: unknown): string | null {
  const { config: c, weights } = r as ReturnType<typeof parseLlama2cCheckpoint>;
  for (const k of [
    'vocab_size',
    'hidden_size',
    'intermediate_size',
    'num_hidden_layers',
    'num_attention_heads',
    'num_key_value_heads',
    'max_position_embeddings',
    'head_dim',
  ] as const) {
    if (!(Number.isSafeInteger(c[k]) && c[k] > 0)) return `${k} = ${c[k]}`;
  }
  const want = 2 + 9 * c.num_hidden_layers + (c.tie_word_embeddings ? 0 : 1);
  if (weights.size !== want) return `${weights.size} weights, expected ${want}`;
  for (const [name, t] of weights) {
    if (t.data.length !== t.shape.reduce((a, b) => a * b, 1))
      return `weight ${name} has ${t.data.length} values for shape [${t.shape}]`;
  }
  return null;
}

function l2cCase(
  label: string,
  bytes: Uint8Array,
  expect?: 'accept' | 'reject',
  ropeLayout?: 'half' | 'interleaved',
): FuzzCase {
  return {
    label: ropeLayout ? `${label} (${ropeLayout})` : label,
    size: bytes.length,
    names: [L2C_FILE],
    run: () => parseLlama2cCheckpoint(bytes, L2C_FILE, ropeLayout ? { ropeLayout } : {}),
    check: checkL2c,
    expect,
  };
}

const FIELDS = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'];

function edges(): (() => FuzzCase)[] {
  const out: (() => FuzzCase)[] = [];
  const dims: L2cDims = { D: 8, H: 12, L: 2, nHeads: 2, nKv: 1, V: 16, seq: 4, rope: true };
  const make = (d: L2cDims = dims) => buildL2c(new Rng(11), d);
  out.push(() => l2cCase('valid tied with RoPE tables', make().bytes, 'accept'));
  out.push(() => l2cCase('valid tied without RoPE tables', make({ ...dims, rope: false }).bytes, 'accept'));
  out.push(() => l2cCase('valid untied', make({ ...dims, V: -16 }).bytes, 'accept', 'interleaved'));
  out.push(() => l2cCase('valid at an odd offset', misalign(new Rng(3), make().bytes), 'accept'));
  const { bytes: full, offsets } = make();
  for (const o of offsets) {
    for (const delta of [-4, -1, 1]) {
      const n = o + delta;
      if (n < 0 || n > full.length || n === full.length) continue;
      out.push(() => l2cCase(`truncated at ${n}/${full.length}`, full.slice(0, n), 'reject'));
    }
  }
  for (const extra of [1, 3, 4, 8, 4 * 8, 4 * 16 * 8])
    out.push(() => l2cCase(`${extra} extra bytes`, concatBytes(full, new Uint8Array(extra)), 'reject'));
  FIELDS.forEach((field, i) => {
    for (const v of [...INT32_EDGES, 9, 15, 17, 1 + [8, 12, 2, 2, 1, 16, 4][i], -[8, 12, 2, 2, 1, 16, 4][i]]) {
      out.push(() => {
        const b = full.slice();
        new DataView(b.buffer).setInt32(4 * i, v, true);
        return l2cCase(`header ${field} = ${v}`, b);
      });
    }
  });
  out.push(() => {
    const b = full.slice();
    new DataView(b.buffer).setUint32(0, 0x616b3432, true);
    return l2cCase('versioned "ak42" magic', b, 'reject');
  });
  out.push(() => {
    const b = new Uint8Array(28);
    new Int32Array(b.buffer).set([2 ** 31 - 1, 2 ** 31 - 1, 2 ** 31 - 1, 1, 1, -(2 ** 31), 2 ** 31 - 1]);
    return l2cCase('header of int32 maxima, no data', b, 'reject');
  });
  out.push(() => {
    const b = new Uint8Array(28 + 4096);
    new Int32Array(b.buffer, 0, 7).set([65536, 65536, 65536, 2, 2, 65536, 65536]);
    return l2cCase('header of 65536s, 4 KiB of data', b, 'reject');
  });
  for (let n = 0; n <= 28; n += 4) out.push(() => l2cCase(`${n} zero bytes`, new Uint8Array(n), 'reject'));
  return out;
}

function random(rng: Rng): FuzzCase {
  const r = rng.next();
  if (r < 0.08) {
    const n = pick(rng, [between(rng, 0, 64), between(rng, 0, 8192)]);
    return l2cCase(`random ${n} bytes`, randomBytes(rng, n));
  }
  const d = randomDims(rng);
  const { bytes, offsets } = buildL2c(rng, d);
  const desc = `dims ${JSON.stringify(d)}`;
  const layout = chance(rng, 0.2) ? pick(rng, ['half', 'interleaved'] as const) : undefined;
  if (r < 0.18) return l2cCase(`valid ${desc}`, chance(rng, 0.3) ? misalign(rng, bytes) : bytes, 'accept', layout);
  if (r < 0.45) {
    // Header fields that disagree with the file.
    const b = bytes.slice();
    const dv = new DataView(b.buffer);
    const what: string[] = [];
    for (let k = between(rng, 1, 2); k > 0; k--) {
      const i = rng.int(7);
      const old = dv.getInt32(4 * i, true);
      const v = pick(rng, [...INT32_EDGES, old + 1, old - 1, old * 2, -old, Math.floor(old / 2)]) | 0;
      dv.setInt32(4 * i, v, true);
      what.push(`${FIELDS[i]} ${old} -> ${v}`);
    }
    return l2cCase(`${desc}: ${what.join(', ')}`, b, undefined, layout);
  }
  if (r < 0.6) {
    // The right header for other dims (a file of the wrong size).
    const other = randomDims(rng);
    const b = bytes.slice();
    new Int32Array(b.buffer, 0, 7).set([other.D, other.H, other.L, other.nHeads, other.nKv, other.V, other.seq]);
    return l2cCase(`${desc} with the header of ${JSON.stringify(other)}`, b, undefined, layout);
  }
  const m = mutateBytes(rng, bytes, offsets);
  return l2cCase(`${desc}: ${m.what}`, m.bytes, undefined, layout);
}

export const llama2cTargets: Target[] = [{ name: 'parseLlama2cCheckpoint', weight: 10, edges: edges(), random }];
