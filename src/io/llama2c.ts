/**
 * Karpathy's llama2.c legacy checkpoint format (e.g. the tinyllamas stories*.bin files).
 *
 * Header: 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len);
 * vocab_size < 0 means an untied classifier is stored at the end. Then float32 arrays:
 * token_embedding [V,D], rms_att [L,D], wq [L,D,D], wk [L,KV*hd,D], wv [L,KV*hd,D], wo [L,D,D],
 * rms_ffn [L,D], w1 [L,H,D], w2 [L,D,H], w3 [L,H,D], rms_final [D], two RoPE tables
 * (seq_len*hd/2 each, unused), and the classifier [V,D] if untied. Matrices are [out, in].
 */
import type { ModelConfig, RawTensors } from '../engine/config';
import { describeNonFinite, firstNonFinite } from '../util/finite';

const HEADER_BYTES = 28;

/**
 * Convert q/k projection rows from the interleaved RoPE layout (pairs (2i, 2i+1)) to HF's
 * rotate_half layout (pairs (i, i + hd/2)), as transformers' convert_llama_weights_to_hf.py:
 * per head, view [hd/2, 2, cols] -> transpose -> [2, hd/2, cols].
 */
export function permuteRopeRows(w: Float32Array, nHeads: number, headDim: number, cols: number): Float32Array {
  return moveRows(w, nHeads, headDim, cols, true);
}

/** The inverse of permuteRopeRows: HF rotate_half layout back to interleaved pairs. */
export function unpermuteRopeRows(w: Float32Array, nHeads: number, headDim: number, cols: number): Float32Array {
  return moveRows(w, nHeads, headDim, cols, false);
}

function moveRows(w: Float32Array, nHeads: number, hd: number, cols: number, toHalf: boolean): Float32Array {
  if (hd % 2 !== 0) throw new Error(`RoPE permutation needs an even head_dim, got ${hd}`);
  if (w.length !== nHeads * hd * cols)
    throw new Error(`RoPE permutation: ${w.length} values, expected ${nHeads}×${hd}×${cols}`);
  const out = new Float32Array(w.length);
  const half = hd / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let i = 0; i < half; i++) {
      for (let j = 0; j < 2; j++) {
        const inter = h * hd + 2 * i + j; // row in the interleaved layout
        const rot = h * hd + j * half + i; // row in the rotate_half layout
        const [from, to] = toHalf ? [inter, rot] : [rot, inter];
        out.set(w.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return out;
}

export interface Llama2cOptions {
  /** 'half' (default): permute q/k rows to HF's layout; 'interleaved': keep llama2.c's layout. */
  ropeLayout?: 'half' | 'interleaved';
}

/** Parse a llama2.c legacy checkpoint into a llama ModelConfig and HF-named weights. */
export function parseLlama2cCheckpoint(
  bytes: Uint8Array,
  fileName: string,
  opts: Llama2cOptions = {},
): { config: ModelConfig; weights: RawTensors } {
  const ropeLayout = opts.ropeLayout ?? 'half';
  if (bytes.length < HEADER_BYTES)
    throw new Error(
      `${fileName}: ${bytes.length} bytes is too short for a llama2.c checkpoint (header alone is ${HEADER_BYTES} bytes)`,
    );
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, true) === 0x616b3432) {
    throw new Error(
      `${fileName}: this is llama2.c's versioned export format (magic "ak42", version ${dv.getInt32(4, true)}); only the legacy format (export --version 0) is supported`,
    );
  }
  const names = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'] as const;
  const hv = names.map((_, i) => dv.getInt32(4 * i, true));
  const [D, H, L, nHeads, nKv, vocabSigned, seqLen] = hv;
  const headerText = names.map((n, i) => `${n}=${hv[i]}`).join(', ');
  names.forEach((n, i) => {
    const v = n === 'vocab_size' ? Math.abs(hv[i]) : hv[i];
    if (v <= 0)
      throw new Error(
        `${fileName}: header ${n} = ${hv[i]} must be ${n === 'vocab_size' ? 'non-zero' : 'positive'} (${headerText}); not a llama2.c checkpoint?`,
      );
  });
  const tied = vocabSigned > 0;
  const V = Math.abs(vocabSigned);
  if (D % nHeads !== 0) throw new Error(`${fileName}: header dim ${D} is not divisible by n_heads ${nHeads}`);
  if (nHeads % nKv !== 0)
    throw new Error(`${fileName}: header n_heads ${nHeads} is not divisible by n_kv_heads ${nKv}`);
  const hd = D / nHeads;
  if (hd % 2 !== 0) throw new Error(`${fileName}: head size ${hd} (dim / n_heads) must be even for RoPE`);
  const kvDim = nKv * hd;

  const layout: [string, number][] = [
    ['token_embedding', V * D],
    ['rms_att', L * D],
    ['wq', L * D * D],
    ['wk', L * kvDim * D],
    ['wv', L * kvDim * D],
    ['wo', L * D * D],
    ['rms_ffn', L * D],
    ['w1', L * H * D],
    ['w2', L * D * H],
    ['w3', L * H * D],
    ['rms_final', D],
  ];
  const baseFloats = layout.reduce((a, [, n]) => a + n, 0);
  const ropeFloats = seqLen * hd; // two tables of seq_len * hd/2
  const base = HEADER_BYTES + 4 * baseFloats;
  const withRope = base + 4 * ropeFloats;
  const allowed = tied ? [base, withRope] : [withRope + 4 * V * D];
  if (!allowed.includes(bytes.length)) {
    const what = tied
      ? `${base} bytes (weights, no RoPE tables) or ${withRope} (with the RoPE tables)`
      : `${allowed[0]} bytes (weights, RoPE tables and the untied classifier)`;
    throw new Error(`${fileName}: file is ${bytes.length} bytes but the header (${headerText}) implies ${what}`);
  }

  // One float32 view of everything after the header (copied once if unaligned).
  const floatsAt = bytes.byteOffset + HEADER_BYTES;
  const nFloats = (bytes.length - HEADER_BYTES) / 4;
  const f =
    floatsAt % 4 === 0
      ? new Float32Array(bytes.buffer, floatsAt, nFloats)
      : new Float32Array(bytes.slice(HEADER_BYTES).buffer);
  const arrays = new Map<string, Float32Array>();
  let pos = 0;
  for (const [name, n] of layout) {
    const data = f.subarray(pos, pos + n);
    const bad = firstNonFinite(data);
    if (bad >= 0) {
      throw new Error(
        `${fileName}: weights "${name}" hold ${describeNonFinite(data, bad, [n])}: weights must be finite numbers (the file is damaged, or was saved from a run that diverged)`,
      );
    }
    arrays.set(name, data);
    pos += n;
  }
  pos += ropeFloats;
  const layer = (name: string, l: number, size: number) => arrays.get(name)!.subarray(l * size, (l + 1) * size);

  const weights: RawTensors = new Map();
  weights.set('model.embed_tokens.weight', { shape: [V, D], data: arrays.get('token_embedding')! });
  for (let l = 0; l < L; l++) {
    const p = `model.layers.${l}.`;
    let q = layer('wq', l, D * D),
      k = layer('wk', l, kvDim * D);
    if (ropeLayout === 'half') {
      q = permuteRopeRows(q, nHeads, hd, D);
      k = permuteRopeRows(k, nKv, hd, D);
    }
    weights.set(p + 'input_layernorm.weight', { shape: [D], data: layer('rms_att', l, D) });
    weights.set(p + 'self_attn.q_proj.weight', { shape: [D, D], data: q });
    weights.set(p + 'self_attn.k_proj.weight', { shape: [kvDim, D], data: k });
    weights.set(p + 'self_attn.v_proj.weight', { shape: [kvDim, D], data: layer('wv', l, kvDim * D) });
    weights.set(p + 'self_attn.o_proj.weight', { shape: [D, D], data: layer('wo', l, D * D) });
    weights.set(p + 'post_attention_layernorm.weight', { shape: [D], data: layer('rms_ffn', l, D) });
    weights.set(p + 'mlp.gate_proj.weight', { shape: [H, D], data: layer('w1', l, H * D) });
    weights.set(p + 'mlp.up_proj.weight', { shape: [H, D], data: layer('w3', l, H * D) });
    weights.set(p + 'mlp.down_proj.weight', { shape: [D, H], data: layer('w2', l, D * H) });
  }
  weights.set('model.norm.weight', { shape: [D], data: arrays.get('rms_final')! });
  if (!tied) weights.set('lm_head.weight', { shape: [V, D], data: f.subarray(pos, pos + V * D) });

  const config: ModelConfig = {
    family: 'llama',
    architecture: 'LlamaForCausalLM',
    vocab_size: V,
    hidden_size: D,
    intermediate_size: H,
    num_hidden_layers: L,
    num_attention_heads: nHeads,
    num_key_value_heads: nKv,
    max_position_embeddings: seqLen,
    norm_eps: 1e-5,
    rope_theta: 10000,
    rope_layout: ropeLayout,
    tie_word_embeddings: tied,
    attention_bias: false,
    hidden_act: 'silu',
    bos_token_id: 1,
    eos_token_id: 2,
    head_dim: hd,
  };
  return { config, weights };
}
