/**
 * The scalars of one AdamW step over the optimizer's flat vectors (src/train/optimizer.ts), as its fused kernels take
 * them: the WGSL programs (webgpu-kernels.ts) and the wasm kernel (wasm-kernels.ts).
 */

/** Step scalars, as JS numbers (rounded to float32 by the kernels, as tf.scalar rounds them). */
export interface AdamWScalars {
  /** torch's lerp weight: 1 − β1 when below 0.5 (m + w·(g − m)), else β1 (g − (g − m)·w). */
  lerpW: number;
  lerpSmall: boolean;
  b2: number;
  c2: number;
  eps: number;
  /** 1 − lr·wd for a decayed parameter, else 1. */
  decay: number;
  /** −lr / (1 − β1ᵗ) */
  negStep: number;
  /** sqrt(1 − β2ᵗ) */
  bc2sqrt: number;
}
