import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import type { ModelConfig, RawTensors } from '../../src/engine/config';
import { paramShapes } from '../../src/engine/params';
import { parseLlama2cCheckpoint, permuteRopeRows, unpermuteRopeRows } from '../../src/io/llama2c';
import { hubSource } from '../../src/io/source';
import { HAVE_STORIES, STORIES_DIR, sharedMissing } from '../helpers';
import { startHubServer } from '../hub-server';

interface Dims {
  dim: number;
  hidden: number;
  layers: number;
  heads: number;
  kvHeads: number;
  vocab: number;
  seqLen: number;
}

/**
 * Build a llama2.c legacy file. Each array's values are `base + index` with a distinct base per
 * array (token_embedding 1e6, rms_att 2e6, ...) so tests can tell which array went where.
 */
function buildLlama2c(d: Dims, opts: { untied?: boolean; rope?: boolean; random?: boolean } = {}): Uint8Array {
  const hd = d.dim / d.heads,
    kv = d.kvHeads * hd,
    L = d.layers;
  const sizes = [
    d.vocab * d.dim,
    L * d.dim,
    L * d.dim * d.dim,
    L * kv * d.dim,
    L * kv * d.dim,
    L * d.dim * d.dim,
    L * d.dim,
    L * d.hidden * d.dim,
    L * d.dim * d.hidden,
    L * d.hidden * d.dim,
    d.dim,
  ];
  const rope = opts.rope === false ? [] : [(d.seqLen * hd) / 2, (d.seqLen * hd) / 2];
  const all = [...sizes, ...rope, ...(opts.untied ? [d.vocab * d.dim] : [])];
  const floats = all.reduce((a, b) => a + b, 0);
  const out = new Uint8Array(28 + 4 * floats);
  const dv = new DataView(out.buffer);
  [d.dim, d.hidden, d.layers, d.heads, d.kvHeads, opts.untied ? -d.vocab : d.vocab, d.seqLen].forEach((v, i) =>
    dv.setInt32(4 * i, v, true),
  );
  const f = new Float32Array(out.buffer, 28, floats);
  let s = 12345;
  let pos = 0;
  all.forEach((n, a) => {
    for (let i = 0; i < n; i++) {
      s = (Math.imul(s, 1103515245) + 12345) >>> 0;
      f[pos + i] = opts.random ? (s >>> 8) / 2 ** 24 - 0.5 : (a + 1) * 1e6 + i;
    }
    pos += n;
  });
  return out;
}

const tiny: Dims = { dim: 8, hidden: 12, layers: 2, heads: 2, kvHeads: 1, vocab: 10, seqLen: 6 };

function expectMatchesParamShapes(config: ModelConfig, weights: RawTensors) {
  const want = paramShapes(config);
  expect([...weights.keys()]).toEqual([...want.keys()]);
  for (const [n, shape] of want) {
    expect(weights.get(n)!.shape, n).toEqual(shape);
    expect(weights.get(n)!.data.length, n).toBe(shape.reduce((a, b) => a * b, 1));
  }
}

// ---- An independent, naive float64 forward pass of the Llama architecture (for the real model check). ----
function forward(cfg: ModelConfig, w: RawTensors, tokens: number[]): Float64Array[] {
  const D = cfg.hidden_size,
    hd = cfg.head_dim,
    H = cfg.num_attention_heads,
    KV = cfg.num_key_value_heads,
    I = cfg.intermediate_size;
  const V = cfg.vocab_size;
  const get = (n: string) => w.get(n)!.data;
  const matvec = (m: Float32Array, x: Float64Array, rows: number, cols: number) => {
    const y = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let a = 0;
      for (let c = 0; c < cols; c++) a += m[r * cols + c] * x[c];
      y[r] = a;
    }
    return y;
  };
  const rms = (x: Float64Array, g: Float32Array) => {
    let ss = 0;
    for (const v of x) ss += v * v;
    const k = 1 / Math.sqrt(ss / x.length + cfg.norm_eps);
    return x.map((v, i) => v * k * g[i]);
  };
  const rope = (v: Float64Array, nHeads: number, pos: number) => {
    for (let h = 0; h < nHeads; h++) {
      for (let i = 0; i < hd / 2; i++) {
        const ang = pos * Math.pow(cfg.rope_theta, -(2 * i) / hd);
        const [a, b] =
          cfg.rope_layout === 'interleaved' ? [h * hd + 2 * i, h * hd + 2 * i + 1] : [h * hd + i, h * hd + i + hd / 2];
        const x0 = v[a],
          x1 = v[b];
        v[a] = x0 * Math.cos(ang) - x1 * Math.sin(ang);
        v[b] = x0 * Math.sin(ang) + x1 * Math.cos(ang);
      }
    }
  };
  const emb = get('model.embed_tokens.weight');
  let xs = tokens.map((t) => Float64Array.from(emb.subarray(t * D, (t + 1) * D)));
  for (let l = 0; l < cfg.num_hidden_layers; l++) {
    const p = `model.layers.${l}.`;
    const hs = xs.map((x) => rms(x, get(p + 'input_layernorm.weight')));
    const qs = hs.map((h, t) => {
      const q = matvec(get(p + 'self_attn.q_proj.weight'), h, H * hd, D);
      rope(q, H, t);
      return q;
    });
    const ks = hs.map((h, t) => {
      const k = matvec(get(p + 'self_attn.k_proj.weight'), h, KV * hd, D);
      rope(k, KV, t);
      return k;
    });
    const vs = hs.map((h) => matvec(get(p + 'self_attn.v_proj.weight'), h, KV * hd, D));
    xs = xs.map((x, t) => {
      const att = new Float64Array(H * hd);
      for (let h = 0; h < H; h++) {
        const kh = Math.floor(h / (H / KV));
        const sc = Array.from({ length: t + 1 }, (_, s) => {
          let a = 0;
          for (let i = 0; i < hd; i++) a += qs[t][h * hd + i] * ks[s][kh * hd + i];
          return a / Math.sqrt(hd);
        });
        const mx = Math.max(...sc),
          e = sc.map((v) => Math.exp(v - mx)),
          z = e.reduce((a, b) => a + b, 0);
        for (let s = 0; s <= t; s++) for (let i = 0; i < hd; i++) att[h * hd + i] += (e[s] / z) * vs[s][kh * hd + i];
      }
      const o = matvec(get(p + 'self_attn.o_proj.weight'), att, D, H * hd);
      const x1 = x.map((v, i) => v + o[i]);
      const h2 = rms(x1, get(p + 'post_attention_layernorm.weight'));
      const g = matvec(get(p + 'mlp.gate_proj.weight'), h2, I, D),
        u = matvec(get(p + 'mlp.up_proj.weight'), h2, I, D);
      const act = g.map((v, i) => (v / (1 + Math.exp(-v))) * u[i]);
      const dn = matvec(get(p + 'mlp.down_proj.weight'), act, D, I);
      return x1.map((v, i) => v + dn[i]);
    });
  }
  const head = cfg.tie_word_embeddings ? emb : get('lm_head.weight');
  return xs.map((x) => matvec(head, rms(x, get('model.norm.weight')), V, D));
}

function meanNll(logits: Float64Array[], tokens: number[]): number {
  let s = 0;
  for (let t = 0; t + 1 < tokens.length; t++) {
    const l = logits[t],
      mx = Math.max(...l);
    const lse = mx + Math.log(l.reduce((a, v) => a + Math.exp(v - mx), 0));
    s += lse - l[tokens[t + 1]];
  }
  return s / (tokens.length - 1);
}

describe('permuteRopeRows', () => {
  it('matches HF convert_llama_weights_to_hf permute (view [h, hd/2, 2, in] -> transpose(1,2))', () => {
    const nH = 2,
      hd = 4,
      cols = 3;
    const w = Float32Array.from({ length: nH * hd * cols }, (_, i) => i);
    const p = permuteRopeRows(w, nH, hd, cols);
    // Rows per head: interleaved order 0,1,2,3 -> half layout takes even rows then odd rows: 0,2,1,3.
    const rowOrder = [0, 2, 1, 3, 4, 6, 5, 7];
    expect(Array.from(p)).toEqual(rowOrder.flatMap((r) => [r * 3, r * 3 + 1, r * 3 + 2]));
    expect(unpermuteRopeRows(p, nH, hd, cols)).toEqual(w);
    expect(() => permuteRopeRows(new Float32Array(6), 1, 3, 2)).toThrow(/even head_dim/);
  });
});

describe('parseLlama2cCheckpoint: synthetic files', () => {
  it('maps every array to its HF name (w1 gate, w2 down, w3 up), tied', () => {
    const bytes = buildLlama2c(tiny);
    const { config, weights } = parseLlama2cCheckpoint(bytes, 'tiny.bin', { ropeLayout: 'interleaved' });
    expect(config).toEqual({
      family: 'llama',
      architecture: 'LlamaForCausalLM',
      vocab_size: 10,
      hidden_size: 8,
      intermediate_size: 12,
      num_hidden_layers: 2,
      num_attention_heads: 2,
      num_key_value_heads: 1,
      max_position_embeddings: 6,
      norm_eps: 1e-5,
      rope_theta: 10000,
      rope_layout: 'interleaved',
      tie_word_embeddings: true,
      attention_bias: false,
      hidden_act: 'silu',
      bos_token_id: 1,
      eos_token_id: 2,
      head_dim: 4,
    } satisfies ModelConfig);
    expectMatchesParamShapes(config, weights);
    const first = (n: string) => weights.get(n)!.data[0];
    expect(first('model.embed_tokens.weight')).toBe(1e6);
    expect(first('model.layers.1.input_layernorm.weight')).toBe(2e6 + 8);
    expect(first('model.layers.1.self_attn.q_proj.weight')).toBe(3e6 + 64);
    expect(first('model.layers.0.self_attn.k_proj.weight')).toBe(4e6);
    expect(first('model.layers.1.self_attn.v_proj.weight')).toBe(5e6 + 32);
    expect(first('model.layers.0.self_attn.o_proj.weight')).toBe(6e6);
    expect(first('model.layers.1.post_attention_layernorm.weight')).toBe(7e6 + 8);
    expect(first('model.layers.1.mlp.gate_proj.weight')).toBe(8e6 + 96);
    expect(first('model.layers.1.mlp.down_proj.weight')).toBe(9e6 + 96);
    expect(first('model.layers.1.mlp.up_proj.weight')).toBe(10e6 + 96);
    expect(first('model.norm.weight')).toBe(11e6);
    expect(Array.from(weights.get('model.norm.weight')!.data)).toEqual(Array.from({ length: 8 }, (_, i) => 11e6 + i));
  });

  it('untied classifier after the RoPE tables; q/k permuted by default', () => {
    const bytes = buildLlama2c(tiny, { untied: true });
    const { config, weights } = parseLlama2cCheckpoint(bytes, 'untied.bin');
    expect(config.tie_word_embeddings).toBe(false);
    expect(config.rope_layout).toBe('half');
    expectMatchesParamShapes(config, weights);
    expect(weights.get('lm_head.weight')!.data[0]).toBe(14e6);
    // q: head 0 rows in half layout are interleaved rows 0,2,1,3.
    const q = weights.get('model.layers.0.self_attn.q_proj.weight')!.data;
    expect([0, 1, 2, 3].map((r) => q[r * 8])).toEqual([3e6, 3e6 + 16, 3e6 + 8, 3e6 + 24]);
    const inter = parseLlama2cCheckpoint(bytes, 'untied.bin', { ropeLayout: 'interleaved' }).weights;
    for (const n of ['model.layers.1.self_attn.q_proj.weight', 'model.layers.1.self_attn.k_proj.weight']) {
      const [h, hd] = n.includes('q_proj') ? [2, 4] : [1, 4];
      expect(unpermuteRopeRows(weights.get(n)!.data, h, hd, 8)).toEqual(inter.get(n)!.data);
    }
    expect(weights.get('model.layers.1.self_attn.v_proj.weight')!.data).toEqual(
      inter.get('model.layers.1.self_attn.v_proj.weight')!.data,
    );
  });

  it('the permutation preserves attention: interleaved RoPE on raw weights = half RoPE on permuted weights', () => {
    const d: Dims = { dim: 16, hidden: 8, layers: 1, heads: 2, kvHeads: 2, vocab: 7, seqLen: 8 };
    const bytes = buildLlama2c(d, { random: true });
    const a = parseLlama2cCheckpoint(bytes, 'r.bin', { ropeLayout: 'interleaved' });
    const b = parseLlama2cCheckpoint(bytes, 'r.bin', { ropeLayout: 'half' });
    const la = forward(a.config, a.weights, [1, 5, 3, 6, 2]);
    const lb = forward(b.config, b.weights, [1, 5, 3, 6, 2]);
    for (let t = 0; t < la.length; t++) for (let v = 0; v < 7; v++) expect(lb[t][v]).toBeCloseTo(la[t][v], 10);
  });

  it('accepts files without RoPE tables and unaligned buffers', () => {
    const bytes = buildLlama2c(tiny, { rope: false });
    expectMatchesParamShapes(
      ...(Object.values(parseLlama2cCheckpoint(bytes, 'norope.bin')) as [ModelConfig, RawTensors]),
    );
    const shifted = new Uint8Array(bytes.length + 1);
    shifted.set(bytes, 1);
    const { weights } = parseLlama2cCheckpoint(shifted.subarray(1), 'shifted.bin', { ropeLayout: 'interleaved' });
    expect(weights.get('model.norm.weight')!.data[7]).toBe(11e6 + 7);
  });

  it('rejects wrong sizes, naming the file, expected and actual byte sizes', () => {
    const bytes = buildLlama2c(tiny);
    const size = bytes.length;
    const base = size - 4 * 6 * 4; // minus the two RoPE tables (seq 6 × hd/2 2 each)
    expect(() => parseLlama2cCheckpoint(bytes.subarray(0, size - 4), 'cut.bin')).toThrow(
      new RegExp(
        `^cut\\.bin: file is ${size - 4} bytes but the header \\(dim=8, hidden_dim=12, n_layers=2, n_heads=2, n_kv_heads=1, vocab_size=10, seq_len=6\\) implies ${base} bytes \\(weights, no RoPE tables\\) or ${size} \\(with the RoPE tables\\)`,
      ),
    );
    const untied = buildLlama2c(tiny, { untied: true });
    expect(() => parseLlama2cCheckpoint(untied.subarray(0, untied.length - 40), 'u.bin')).toThrow(
      new RegExp(
        `u\\.bin: file is ${untied.length - 40} bytes .*implies ${untied.length} bytes \\(weights, RoPE tables and the untied classifier\\)`,
      ),
    );
    expect(() => parseLlama2cCheckpoint(new Uint8Array(10), 'short.bin')).toThrow(/short\.bin: 10 bytes is too short/);
  });

  it('rejects non-positive or inconsistent header values', () => {
    const withHeader = (i: number, v: number) => {
      const b = buildLlama2c(tiny);
      new DataView(b.buffer).setInt32(4 * i, v, true);
      return b;
    };
    expect(() => parseLlama2cCheckpoint(withHeader(2, 0), 'h.bin')).toThrow(
      /h\.bin: header n_layers = 0 must be positive/,
    );
    expect(() => parseLlama2cCheckpoint(withHeader(0, -8), 'h.bin')).toThrow(/header dim = -8 must be positive/);
    expect(() => parseLlama2cCheckpoint(withHeader(5, 0), 'h.bin')).toThrow(/header vocab_size = 0 must be non-zero/);
    expect(() => parseLlama2cCheckpoint(withHeader(3, 3), 'h.bin')).toThrow(/dim 8 is not divisible by n_heads 3/);
    expect(() => parseLlama2cCheckpoint(withHeader(4, 3), 'h.bin')).toThrow(
      /n_heads 2 is not divisible by n_kv_heads 3/,
    );
    const v1 = new Uint8Array(256);
    new DataView(v1.buffer).setUint32(0, 0x616b3432, true);
    new DataView(v1.buffer).setInt32(4, 1, true);
    expect(() => parseLlama2cCheckpoint(v1, 'v1.bin')).toThrow(/v1\.bin: .*versioned export format .*version 1/);
  });
});

describe.skipIf(!HAVE_STORIES)('parseLlama2cCheckpoint: stories260K', () => {
  const file = path.join(STORIES_DIR, 'stories260K.bin');

  it('config and shapes match paramShapes; permute∘unpermute is identity', async () => {
    const bytes = new Uint8Array(await readFile(file));
    const { config, weights } = parseLlama2cCheckpoint(bytes, 'stories260K.bin');
    expect(config).toMatchObject({
      hidden_size: 64,
      intermediate_size: 172,
      num_hidden_layers: 5,
      num_attention_heads: 8,
      num_key_value_heads: 4,
      vocab_size: 512,
      max_position_embeddings: 512,
      tie_word_embeddings: true,
      head_dim: 8,
      rope_layout: 'half',
    });
    expectMatchesParamShapes(config, weights);
    const raw = parseLlama2cCheckpoint(bytes, 'stories260K.bin', { ropeLayout: 'interleaved' }).weights;
    for (let l = 0; l < 5; l++) {
      const q = raw.get(`model.layers.${l}.self_attn.q_proj.weight`)!.data,
        k = raw.get(`model.layers.${l}.self_attn.k_proj.weight`)!.data;
      expect(unpermuteRopeRows(permuteRopeRows(q, 8, 8, 64), 8, 8, 64)).toEqual(q);
      expect(permuteRopeRows(unpermuteRopeRows(k, 4, 8, 64), 4, 8, 64)).toEqual(k);
      expect(weights.get(`model.layers.${l}.self_attn.q_proj.weight`)!.data).toEqual(permuteRopeRows(q, 8, 8, 64));
      expect(weights.get(`model.layers.${l}.self_attn.k_proj.weight`)!.data).toEqual(permuteRopeRows(k, 4, 8, 64));
    }
  });

  it('reproduces the reference mean NLL in both RoPE layouts (naive forward pass), loaded over HTTP', async () => {
    const ref = JSON.parse(await readFile(path.join(STORIES_DIR, 'reference.json'), 'utf8'));
    const server = await startHubServer(STORIES_DIR, { mounts: { 'karpathy/tinyllamas': path.dirname(STORIES_DIR) } });
    let bytes: Uint8Array;
    try {
      bytes = await hubSource(server.baseUrl, 'karpathy/tinyllamas').read('stories260K/stories260K.bin');
    } finally {
      await server.close();
    }
    const tokens: number[] = ref.teacher_forced.tokens;
    for (const ropeLayout of ['half', 'interleaved'] as const) {
      const { config, weights } = parseLlama2cCheckpoint(bytes, 'stories260K.bin', { ropeLayout });
      const logits = forward(config, weights, tokens);
      expect(Math.abs(meanNll(logits, tokens) - ref.teacher_forced.mean_nll), ropeLayout).toBeLessThan(1e-4);
      ref.teacher_forced.logits_last_first8.forEach((v: number, i: number) =>
        expect(logits[logits.length - 1][i]).toBeCloseTo(v, 3),
      );
    }
  });
});

describe.runIf(!HAVE_STORIES)('stories260K checks', () => {
  it('are skipped: shared model folder absent', () => console.warn(sharedMissing('the stories260K llama2.c checks')));
});

describe('parseLlama2cCheckpoint: non-finite weights', () => {
  it('are refused, naming the array and the element', () => {
    const bytes = buildLlama2c(tiny);
    const f = new Float32Array(bytes.buffer, bytes.byteOffset + 28, 200);
    f[10 * 8 + 2 * 8 + 5] = NaN; // after token_embedding (10 × 8) and rms_att (2 × 8): wq[5]
    expect(() => parseLlama2cCheckpoint(bytes, 'nan.bin')).toThrow(
      'nan.bin: weights "wq" hold NaN at element [5]: weights must be finite numbers',
    );
  });
});
