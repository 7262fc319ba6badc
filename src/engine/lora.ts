/**
 * LoRA as Hugging Face PEFT defines it: for a targeted linear layer,
 *   y = base(x) + lora_B(lora_A(dropout(x))) · scaling,   scaling = lora_alpha / r  (or / sqrt(r) with use_rslora)
 * lora_A.weight is [r, in] (kaiming-uniform, a = sqrt 5), lora_B.weight is [out, r] (zeros).
 * Parameter names are PEFT's saved names: `base_model.model.<module>.lora_A.weight`.
 * The configuration (LoraConfig, default targets, scaling, validation, target matching) is in ./lora-config.ts.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { ModelConfig } from './config';
import { loraScaling, targetedModules, validateLoraConfig, type LoraConfig } from './lora-config';
import type { LinearModule } from './params';
import { dropout, dropoutMask, loraPath } from './ops';
import { Rng } from '../util/rng';

export function loraParamName(module: string, which: 'A' | 'B'): string {
  return `base_model.model.${module}.lora_${which}.weight`;
}

export interface LoraLayer {
  module: LinearModule;
  A: tf.Variable; // [r, in]
  B: tf.Variable; // [out, r]
}

/** The trainable adapter: only these tensors are variables. */
export class LoraAdapter {
  readonly layers = new Map<string, LoraLayer>();
  readonly scaling: number;
  /** Set while the adapter is merged into the base weights (its path is then skipped). */
  merged = false;

  constructor(
    readonly modelConfig: ModelConfig,
    readonly config: LoraConfig,
    seed = 0,
  ) {
    validateLoraConfig(config);
    this.scaling = loraScaling(config);
    const rng = new Rng(seed);
    for (const m of targetedModules(modelConfig, config)) {
      // kaiming_uniform_(a=sqrt(5)) on [r, in]: bound = gain·sqrt(3/fan_in) with gain = sqrt(2/(1+a²)) → 1/sqrt(in)
      const bound = 1 / Math.sqrt(m.inFeatures);
      const a = new Float32Array(config.r * m.inFeatures);
      for (let i = 0; i < a.length; i++) a[i] = (2 * rng.uniform() - 1) * bound;
      // tfjs variable names are process-global, so the PEFT names live in our maps, not in tfjs
      // tf.variable keeps its own handle on the data: the initial tensors are freed by the tidy
      const [A, B] = tf.tidy(() => [
        tf.variable(tf.tensor2d(a, [config.r, m.inFeatures]), true),
        tf.variable(tf.zeros([m.outFeatures, config.r]), true),
      ]);
      this.layers.set(m.name, { module: m, A, B });
    }
  }

  /** Trainable variables by PEFT name. */
  variables(): Map<string, tf.Variable> {
    const out = new Map<string, tf.Variable>();
    for (const [name, l] of this.layers) {
      out.set(loraParamName(name, 'A'), l.A);
      out.set(loraParamName(name, 'B'), l.B);
    }
    return out;
  }

  /** The A, B variables of every LoRA layer whose module name starts with prefix (e.g. one block). */
  variablesUnder(prefix: string): tf.Variable[] {
    const out: tf.Variable[] = [];
    for (const [name, l] of this.layers) if (name.startsWith(prefix)) out.push(l.A, l.B);
    return out;
  }

  numTrainable(): number {
    let n = 0;
    for (const l of this.layers.values()) n += l.A.size + l.B.size;
    return n;
  }

  /** Replace values (e.g. from an imported adapter); names and shapes must match. */
  assign(values: Map<string, { shape: number[]; data: Float32Array }>): void {
    const vars = this.variables();
    for (const [name, v] of vars) {
      const src = values.get(name);
      if (!src) throw new Error(`adapter is missing ${name}`);
      if (src.shape.join(',') !== v.shape.join(','))
        throw new Error(`adapter tensor ${name} has shape [${src.shape}], expected [${v.shape}]`);
      v.assign(tf.tensor(src.data, v.shape));
    }
    for (const name of values.keys())
      if (!vars.has(name)) throw new Error(`adapter tensor ${name} matches no LoRA layer of this configuration`);
  }

  dispose(): void {
    for (const l of this.layers.values()) {
      l.A.dispose();
      l.B.dispose();
    }
    this.layers.clear();
  }

  /**
   * The LoRA path for one layer: dropout(x) · Aᵀ · Bᵀ · scaling, with x 2-D [M, in].
   * dropoutSeed given → training-mode dropout (inverted scaling, as torch.nn.Dropout).
   */
  delta(module: string, x: tf.Tensor2D, dropoutSeed: number | null): tf.Tensor2D | null {
    if (this.merged) return null;
    const l = this.layers.get(module);
    if (!l) return null;
    return loraPath(this.dropoutInput(x, dropoutSeed), l.A as tf.Tensor2D, l.B as tf.Tensor2D, this.scaling);
  }

  /** x as the LoRA path sees it: after lora_dropout in training mode (dropoutSeed given), else x itself. */
  dropoutInput(x: tf.Tensor2D, dropoutSeed: number | null): tf.Tensor2D {
    if (dropoutSeed == null || this.config.lora_dropout <= 0) return x;
    return dropout(x, this.config.lora_dropout, dropoutSeed) as tf.Tensor2D;
  }

  /** lora_dropout's scaled keep-mask for x in training mode (dropoutSeed given), else null (see ops.dropoutMask). */
  dropoutMaskFor(x: tf.Tensor2D, dropoutSeed: number | null): tf.Tensor2D | null {
    if (dropoutSeed == null || this.config.lora_dropout <= 0) return null;
    return dropoutMask(x.shape, this.config.lora_dropout, dropoutSeed) as tf.Tensor2D;
  }

  /** ΔW in the base weight's layout: scaling·(B·A) [out,in], transposed for Conv1D (PEFT's fan_in_fan_out). */
  deltaWeight(module: string): tf.Tensor2D {
    const l = this.layers.get(module);
    if (!l) throw new Error(`no LoRA layer ${module}`);
    return tf.tidy(() => {
      const d = tf.mul(tf.matMul(l.B, l.A), this.scaling) as tf.Tensor2D;
      return l.module.layout === 'in_out' ? tf.transpose(d) : d;
    });
  }
}
