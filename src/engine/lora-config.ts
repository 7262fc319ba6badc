/**
 * The LoRA configuration as Hugging Face PEFT's LoraConfig (peft/tuners/lora/config.py) — the fields this engine
 * supports (r, lora_alpha, lora_dropout, target_modules, use_rslora), their checks, PEFT's default target modules
 * per architecture, the scaling lora_alpha / r (or / sqrt(r) with use_rslora), and how target_modules selects layers
 * (exact module name or a `.`-suffix match, as PEFT's check_target_module_exists). The layers themselves are in
 * ./lora.ts (like PEFT's layer.py beside config.py).
 *
 * No TensorFlow.js here: the fine-tuning configuration (src/train/config.ts) and the page's main thread use it.
 */
import type { ModelConfig } from './config';
import { linearModules, type LinearModule } from './params';
import { preview } from '../util/preview';

export interface LoraConfig {
  r: number;
  lora_alpha: number;
  lora_dropout: number;
  /** Short module names (q_proj, c_attn, …), full module names, or 'all-linear'. */
  target_modules: string[] | 'all-linear';
  use_rslora: boolean;
}

/**
 * PEFT's defaults when target_modules is not given (peft.utils.constants
 * TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING): c_attn for gpt2; q_proj and v_proj for llama, mistral, qwen2,
 * qwen3, gemma3_text and gpt_neo (whose q_proj/v_proj sit under attn.attention), and for an unknown family.
 */
export function defaultTargets(model: Partial<Pick<ModelConfig, 'family'>>): string[] {
  return model.family === 'gpt2' ? ['c_attn'] : ['q_proj', 'v_proj'];
}

export function loraScaling(c: LoraConfig): number {
  return c.use_rslora ? c.lora_alpha / Math.sqrt(c.r) : c.lora_alpha / c.r;
}

/** The scalar fields of a LoRA config, each with its check and what it must be (for messages). */
export const LORA_FIELD_RULES: Readonly<
  Record<'r' | 'lora_alpha' | 'lora_dropout' | 'use_rslora', { want: string; ok: (v: unknown) => boolean }>
> = Object.freeze({
  r: { want: 'a positive integer', ok: (v) => typeof v === 'number' && Number.isInteger(v) && v >= 1 },
  lora_alpha: { want: 'positive', ok: (v) => typeof v === 'number' && Number.isFinite(v) && v > 0 },
  lora_dropout: { want: 'in [0, 1)', ok: (v) => typeof v === 'number' && v >= 0 && v < 1 },
  use_rslora: { want: 'true or false', ok: (v) => typeof v === 'boolean' },
});

/** target_modules as a list: "all-linear" or a non-empty list of non-empty module names. */
export function isTargetModules(v: unknown): v is LoraConfig['target_modules'] {
  return v === 'all-linear' || (Array.isArray(v) && v.length > 0 && v.every((t) => typeof t === 'string' && t !== ''));
}

/** The first field of `c` that breaks a rule of LORA_FIELD_RULES (missing fields are not checked), or null. */
export function loraFieldProblem(c: Record<string, unknown>): { field: string; want: string; value: unknown } | null {
  for (const [field, rule] of Object.entries(LORA_FIELD_RULES)) {
    if (field in c && c[field] !== undefined && !rule.ok(c[field])) return { field, want: rule.want, value: c[field] };
  }
  return null;
}

/** Throws, naming the field, when a LoRA config is not one PEFT would accept. */
export function validateLoraConfig(c: LoraConfig): void {
  const p = loraFieldProblem(c as unknown as Record<string, unknown>);
  if (p) throw new Error(`LoRA ${p.field} must be ${p.want}, got ${JSON.stringify(p.value)}`);
  if (!isTargetModules(c.target_modules))
    throw new Error(
      `LoRA target_modules must be a non-empty list of module names or "all-linear", got ${preview(c.target_modules)}`,
    );
}

/** The modules a config targets, matching as PEFT does: exact name or a `.`-suffix match. */
export function targetedModules(cfg: ModelConfig, lc: LoraConfig): LinearModule[] {
  const all = linearModules(cfg);
  if (lc.target_modules === 'all-linear') return all;
  const targets = lc.target_modules;
  const chosen = all.filter((m) => targets.some((t) => m.name === t || m.name.endsWith('.' + t)));
  const unmatched = targets.filter((t) => !all.some((m) => m.name === t || m.name.endsWith('.' + t)));
  if (unmatched.length) {
    const shorts = [...new Set(all.map((m) => m.short))];
    throw new Error(
      `LoRA target_modules ${preview(unmatched)} match no layer of this ${cfg.architecture}; its linear layers are ${shorts.join(', ')} (or "all-linear")`,
    );
  }
  return chosen;
}
