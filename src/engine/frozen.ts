/**
 * Frozen weights stored compact (issue: 0.5B models in a tab). A LoRA run never updates the base weights, so the
 * big matrices (linear layers, embeddings, LM head) can live as 16-bit floats or 8-bit integers with a float32
 * scale per output channel (bitsandbytes LLM.int8's absmax storage) and be expanded to float32 one matrix at a time,
 * when an op needs it, then dropped. The compact bytes are plain JavaScript typed arrays: backend-independent (a
 * backend switch keeps them as they are) and outside the wasm heap, so the 4 GB heap holds only what is in use.
 *
 * - float16: the checkpoint's 16-bit values kept exactly when they are bfloat16 (Gemma, Qwen and most Hub files are
 *   stored so); otherwise IEEE half with round-to-nearest-even (10-bit mantissa, relative error ≤ 2⁻¹¹), or bfloat16
 *   when a value is beyond half's range (65504).
 * - int8: q = round(w / s), s = absmax / 127 per output channel (rows of nn.Linear [out, in] and embeddings
 *   [vocab, hidden]; columns of GPT-2's Conv1D [in, out]).
 */

/** HF-style name of the setting: how frozen base weights are kept (LoRA weights and optimizer state stay float32). */
export type FrozenDtype = 'float32' | 'float16' | 'int8';
export const FROZEN_DTYPES: readonly FrozenDtype[] = ['float32', 'float16', 'int8'];

export interface CompactWeight {
  readonly shape: readonly [number, number];
  readonly format: 'f16' | 'bf16' | 'int8';
  readonly data: Uint16Array | Int8Array;
  /** int8 only: one scale per output channel. */
  readonly scales: Float32Array | null;
  /** The output-channel axis: 0 for [out, in] (nn.Linear, embeddings, LM head), 1 for GPT-2 Conv1D [in, out]. */
  readonly channelAxis: 0 | 1;
}

/** Bytes per parameter of frozen matrices kept in `dtype` (int8 scales are per channel, counted separately). */
export function frozenBytesPerParam(dtype: FrozenDtype): number {
  return dtype === 'float32' ? 4 : dtype === 'float16' ? 2 : 1;
}

/** Bytes a compact weight takes (data and scales). */
export function compactBytes(w: CompactWeight): number {
  return w.data.byteLength + (w.scales?.byteLength ?? 0);
}

// --- 16-bit conversions -------------------------------------------------------------------------------------------

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** IEEE binary16 bits of x, rounded to nearest even (overflow → ±Inf; NaN stays NaN). */
export function toHalfBits(x: number): number {
  f32[0] = x;
  const bits = u32[0];
  const sign = (bits >>> 16) & 0x8000;
  const exp = (bits >>> 23) & 0xff;
  let mant = bits & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // subnormal half (or zero): shift the implicit 1 in, round to nearest even
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  let m = mant >>> 13;
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

let halfTable: Float32Array | null = null;
/** float32 value of every binary16 bit pattern (256 KiB, built once). */
function halfToFloat(): Float32Array {
  if (halfTable) return halfTable;
  const t = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const s = h & 0x8000 ? -1 : 1;
    const e = (h >>> 10) & 0x1f;
    const m = h & 0x3ff;
    t[h] = e === 0 ? s * m * 2 ** -24 : e === 0x1f ? (m ? NaN : s * Infinity) : s * (1 + m / 1024) * 2 ** (e - 15);
  }
  halfTable = t;
  return t;
}

// --- compaction ---------------------------------------------------------------------------------------------------

/** Compact a float32 matrix. `channelAxis` names the output-channel axis (see CompactWeight). */
export function compactWeight(
  data: Float32Array,
  shape: readonly [number, number],
  dtype: Exclude<FrozenDtype, 'float32'>,
  channelAxis: 0 | 1 = 0,
): CompactWeight {
  const [R, C] = shape;
  if (data.length !== R * C) throw new Error(`compactWeight: ${data.length} values for shape [${R}, ${C}]`);
  if (dtype === 'int8') {
    const nCh = channelAxis === 0 ? R : C;
    const absmax = new Float32Array(nCh);
    for (let r = 0; r < R; r++) {
      const row = r * C;
      for (let c = 0; c < C; c++) {
        const a = Math.abs(data[row + c]);
        const ch = channelAxis === 0 ? r : c;
        if (a > absmax[ch]) absmax[ch] = a;
      }
    }
    const scales = new Float32Array(nCh);
    const inv = new Float32Array(nCh);
    for (let ch = 0; ch < nCh; ch++) {
      scales[ch] = absmax[ch] / 127;
      inv[ch] = absmax[ch] > 0 ? 127 / absmax[ch] : 0;
    }
    const q = new Int8Array(R * C);
    for (let r = 0; r < R; r++) {
      const row = r * C;
      for (let c = 0; c < C; c++) q[row + c] = Math.round(data[row + c] * inv[channelAxis === 0 ? r : c]);
    }
    return { shape: [R, C], format: 'int8', data: q, scales, channelAxis };
  }
  // 16-bit: bfloat16 when every value already is one (exact), else half unless a value is out of half's range.
  const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
  let isBf16 = true,
    fitsHalf = true;
  for (let i = 0; i < bits.length; i++) {
    if (bits[i] & 0xffff) isBf16 = false;
    if (Math.abs(data[i]) > 65504) fitsHalf = false;
  }
  const out = new Uint16Array(R * C);
  if (isBf16 || !fitsHalf) {
    // round to nearest even on the 16 dropped bits (exact when they are zero)
    for (let i = 0; i < bits.length; i++) {
      const b = bits[i];
      out[i] = (b + 0x7fff + ((b >>> 16) & 1)) >>> 16;
    }
    return { shape: [R, C], format: 'bf16', data: out, scales: null, channelAxis };
  }
  for (let i = 0; i < data.length; i++) out[i] = toHalfBits(data[i]);
  return { shape: [R, C], format: 'f16', data: out, scales: null, channelAxis };
}

/** Rows [start, end) of the matrix as float32 (the whole matrix by default), into `out` when given. */
export function expandRowRange(w: CompactWeight, start = 0, end = w.shape[0], out?: Float32Array): Float32Array {
  const C = w.shape[1];
  const n = (end - start) * C;
  const dst = out ?? new Float32Array(n);
  const off = start * C;
  if (w.format === 'f16') {
    const t = halfToFloat();
    const d = w.data as Uint16Array;
    for (let i = 0; i < n; i++) dst[i] = t[d[off + i]];
  } else if (w.format === 'bf16') {
    const d = w.data as Uint16Array;
    const o = new Uint32Array(dst.buffer, dst.byteOffset, n);
    for (let i = 0; i < n; i++) o[i] = d[off + i] << 16;
  } else {
    const d = w.data as Int8Array;
    const s = w.scales!;
    if (w.channelAxis === 0) {
      for (let r = start; r < end; r++) {
        const sc = s[r];
        const base = (r - start) * C,
          src = r * C;
        for (let c = 0; c < C; c++) dst[base + c] = d[src + c] * sc;
      }
    } else {
      for (let r = start; r < end; r++) {
        const base = (r - start) * C,
          src = r * C;
        for (let c = 0; c < C; c++) dst[base + c] = d[src + c] * s[c];
      }
    }
  }
  return dst;
}

/** The whole matrix as float32. */
export function expandWeight(w: CompactWeight): Float32Array {
  return expandRowRange(w);
}

/** Selected rows (e.g. the embeddings of some token ids) as a float32 [rows.length, columns] matrix. */
export function expandRows(w: CompactWeight, rows: ArrayLike<number>): Float32Array {
  const C = w.shape[1];
  const out = new Float32Array(rows.length * C);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i];
    if (!(r >= 0 && r < w.shape[0])) throw new Error(`row ${r} is outside [0, ${w.shape[0]})`);
    expandRowRange(w, r, r + 1, out.subarray(i * C, (i + 1) * C));
  }
  return out;
}
