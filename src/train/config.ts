/**
 * The fine-tuning configuration, with the names Hugging Face users know: PEFT's LoraConfig (r, lora_alpha,
 * lora_dropout, target_modules, use_rslora), transformers' TrainingArguments (learning_rate, num_train_epochs,
 * max_steps, per_device_train_batch_size, gradient_accumulation_steps, warmup_ratio/warmup_steps, lr_scheduler_type,
 * weight_decay, max_grad_norm, adam_*, seed, logging_steps, eval_strategy/eval_steps, gradient_checkpointing,
 * group_by_length), TRL's SFTConfig (max_length, packing, eos_token) and LLaMA-Factory's data options
 * (template, train_on_prompt → train_on_inputs, val_size; test_size for a held-out generation split).
 * Defaults are TrainingArguments' except those LoRA recipes change (learning_rate 2e-4; r 8, lora_alpha 16,
 * lora_dropout 0.05) and TRL's logging_steps 10 / max_length 1024 (clipped to the model's context).
 *
 * No TensorFlow.js (runtime imports only from tf-free modules): the page's main thread imports the defaults.
 */
import type { ModelConfig } from '../engine/config';
import { defaultTargets, isTargetModules, loraFieldProblem, type LoraConfig } from '../engine/lora-config';
import type { TemplateSpec } from '../data/templates';
import { FROZEN_DTYPES, type FrozenDtype } from '../engine/frozen';
import { SCHEDULE_NAMES, type ScheduleName } from './schedule';

export interface FinetuneConfig {
  // --- LoRA (peft.LoraConfig)
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** Short names (q_proj, …), full module names, or "all-linear"; null = PEFT's default for the architecture. */
  target_modules: string[] | 'all-linear' | null;
  use_rslora: boolean;
  // --- training (transformers.TrainingArguments)
  learning_rate: number;
  /** May be fractional. Ignored when max_steps > 0. */
  num_train_epochs: number;
  /** > 0: total optimizer steps (overrides num_train_epochs); -1: from num_train_epochs. */
  max_steps: number;
  per_device_train_batch_size: number;
  per_device_eval_batch_size: number;
  gradient_accumulation_steps: number;
  warmup_ratio: number;
  /** > 0 overrides warmup_ratio. */
  warmup_steps: number;
  lr_scheduler_type: ScheduleName;
  weight_decay: number;
  /** 0 = no clipping. */
  max_grad_norm: number;
  adam_beta1: number;
  adam_beta2: number;
  adam_epsilon: number;
  seed: number;
  logging_steps: number;
  eval_strategy: 'no' | 'steps' | 'epoch';
  /** null = logging_steps (as HF). */
  eval_steps: number | null;
  gradient_checkpointing: boolean;
  group_by_length: boolean;
  /** Round batch lengths up to a multiple of this (fewer kernel shapes on WebGPU/WebGL); null = off. */
  pad_to_multiple_of: number | null;
  // --- SFT data (TRL SFTConfig, LLaMA-Factory)
  /** Examples are cut to this many tokens (and packed rows have this length). Clipped to the model's context. */
  max_length: number;
  packing: boolean;
  /**
   * TRL's eos_token: the string that ends each trained response (default the tokenizer's EOS). Set it when the
   * model never learnt its EOS token — e.g. "\n" for llama2.c TinyStories models, whose `</s>` embedding was never
   * trained; generation then stops at this string.
   */
  eos_token: string | null;
  /** null = the tokenizer's chat template if it has one, else Stanford Alpaca. */
  template: TemplateSpec | null;
  /** Train on prompt tokens too (LLaMA-Factory train_on_prompt; TRL completion_only_loss=False). */
  train_on_inputs: boolean;
  /** Validation split taken from the training files: fraction in (0, 1) or a count (LLaMA-Factory val_size). */
  val_size: number;
  /** Held-out split for generation evaluation (never trained on or used for model selection): fraction or count. */
  test_size: number;
  // --- model storage
  /**
   * How the frozen base weights are kept (like transformers' torch_dtype / bitsandbytes' load_in_8bit): float32, or
   * 16-bit / 8-bit with per-channel scales, expanded to float32 one layer at a time. LoRA weights and the optimizer
   * state stay float32.
   */
  frozen_dtype: FrozenDtype;
}

export const DEFAULT_FINETUNE_CONFIG: Readonly<FinetuneConfig> = Object.freeze({
  r: 8,
  lora_alpha: 16,
  lora_dropout: 0.05,
  target_modules: null,
  use_rslora: false,
  learning_rate: 2e-4,
  num_train_epochs: 3,
  max_steps: -1,
  per_device_train_batch_size: 8,
  per_device_eval_batch_size: 8,
  gradient_accumulation_steps: 1,
  warmup_ratio: 0,
  warmup_steps: 0,
  lr_scheduler_type: 'linear',
  weight_decay: 0,
  max_grad_norm: 1,
  adam_beta1: 0.9,
  adam_beta2: 0.999,
  adam_epsilon: 1e-8,
  seed: 42,
  logging_steps: 10,
  eval_strategy: 'steps',
  eval_steps: null,
  gradient_checkpointing: false,
  group_by_length: false,
  pad_to_multiple_of: null,
  max_length: 1024,
  packing: false,
  eos_token: null,
  template: null,
  train_on_inputs: false,
  val_size: 0,
  test_size: 0,
  frozen_dtype: 'float32',
} as FinetuneConfig);

/** Merge with the defaults and check every field; throws naming the field. Returns the config and warnings. */
export function resolveFinetuneConfig(
  partial: Partial<FinetuneConfig>,
  contextLength?: number,
): { config: FinetuneConfig; warnings: string[] } {
  for (const k of Object.keys(partial)) {
    if (!(k in DEFAULT_FINETUNE_CONFIG)) throw new Error(`unknown fine-tuning option "${k}"`);
  }
  const c: FinetuneConfig = { ...DEFAULT_FINETUNE_CONFIG };
  for (const [k, v] of Object.entries(partial)) if (v !== undefined) (c as unknown as Record<string, unknown>)[k] = v;
  const warnings: string[] = [];
  const bad = (field: keyof FinetuneConfig, want: string): never => {
    throw new Error(`${field} must be ${want}, got ${JSON.stringify(c[field])}`);
  };
  const posInt = (f: keyof FinetuneConfig) => {
    const v = c[f];
    if (!(typeof v === 'number' && Number.isInteger(v) && v >= 1)) bad(f, 'a positive integer');
  };
  const num = (f: keyof FinetuneConfig, ok: (x: number) => boolean, want: string) => {
    const v = c[f];
    if (!(typeof v === 'number' && Number.isFinite(v) && ok(v))) bad(f, want);
  };
  const lora = loraFieldProblem(c as unknown as Record<string, unknown>); // PEFT LoraConfig's rules
  if (lora) bad(lora.field as keyof FinetuneConfig, lora.want);
  if (!(c.target_modules === null || isTargetModules(c.target_modules)))
    bad('target_modules', 'a non-empty list of module names, "all-linear" or null');
  num('learning_rate', (x) => x >= 0, '≥ 0');
  num('num_train_epochs', (x) => x > 0, 'positive');
  num('max_steps', (x) => Number.isInteger(x) && (x === -1 || x >= 1), '-1 or a positive integer');
  posInt('per_device_train_batch_size');
  posInt('per_device_eval_batch_size');
  posInt('gradient_accumulation_steps');
  num('warmup_ratio', (x) => x >= 0 && x <= 1, 'in [0, 1]');
  num('warmup_steps', (x) => Number.isInteger(x) && x >= 0, 'a non-negative integer');
  if (!SCHEDULE_NAMES.includes(c.lr_scheduler_type)) bad('lr_scheduler_type', `one of ${SCHEDULE_NAMES.join(', ')}`);
  num('weight_decay', (x) => x >= 0, '≥ 0');
  num('max_grad_norm', (x) => x >= 0, '≥ 0 (0 = no clipping)');
  num('adam_beta1', (x) => x >= 0 && x < 1, 'in [0, 1)');
  num('adam_beta2', (x) => x >= 0 && x < 1, 'in [0, 1)');
  num('adam_epsilon', (x) => x > 0, 'positive');
  num('seed', (x) => Number.isSafeInteger(x), 'an integer');
  posInt('logging_steps');
  if (!['no', 'steps', 'epoch'].includes(c.eval_strategy)) bad('eval_strategy', '"no", "steps" or "epoch"');
  if (c.eval_steps !== null) posInt('eval_steps');
  if (c.pad_to_multiple_of !== null) posInt('pad_to_multiple_of');
  posInt('max_length');
  if (c.eos_token !== null && (typeof c.eos_token !== 'string' || c.eos_token === ''))
    bad('eos_token', 'a non-empty string or null');
  num('val_size', (x) => x >= 0, 'a fraction in (0, 1) or a count ≥ 1 (0 = none)');
  num('test_size', (x) => x >= 0, 'a fraction in (0, 1) or a count ≥ 1 (0 = none)');
  if (!FROZEN_DTYPES.includes(c.frozen_dtype)) bad('frozen_dtype', `one of ${FROZEN_DTYPES.join(', ')}`);
  if (contextLength !== undefined && c.max_length > contextLength) {
    warnings.push(
      `max_length ${c.max_length} exceeds the model's context length ${contextLength}; using ${contextLength}`,
    );
    c.max_length = contextLength;
  }
  if (c.packing && c.group_by_length) warnings.push('group_by_length has no effect with packing');
  return { config: c, warnings };
}

/** The PEFT LoraConfig of a fine-tuning config for a model. */
export function loraConfigOf(c: FinetuneConfig, model: ModelConfig): LoraConfig {
  return {
    r: c.r,
    lora_alpha: c.lora_alpha,
    lora_dropout: c.lora_dropout,
    use_rslora: c.use_rslora,
    target_modules: c.target_modules ?? defaultTargets(model),
  };
}
