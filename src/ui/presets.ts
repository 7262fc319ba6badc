/** Training presets: the catalog's per-model settings, family defaults for other models, and quick/long variants. */
import { catalogModel } from './catalog';
import type { Preset } from './ConfigureSection';
import { DEFAULT_FINETUNE_CONFIG, defaultTargets, type FinetuneConfig, type ModelInfo } from '../worker/api';

/** What the page starts with before a model is loaded: the session's defaults, with a live chart per step. */
export const DEFAULT_SETTINGS: FinetuneConfig = {
  ...DEFAULT_FINETUNE_CONFIG,
  target_modules: null,
  logging_steps: 1,
  eval_steps: 10,
  max_length: 256,
  val_size: 8,
  pad_to_multiple_of: 8,
};

function familyDefaults(info: ModelInfo): FinetuneConfig {
  const small = info.params < 50e6;
  return {
    ...DEFAULT_SETTINGS,
    target_modules: defaultTargets(info),
    learning_rate: small ? 1e-3 : 2e-4,
    per_device_train_batch_size: small ? 8 : 2,
    gradient_accumulation_steps: small ? 1 : 4,
    max_length: Math.min(256, info.contextLength),
    gradient_checkpointing: info.params > 300e6,
  };
}

/** The settings a freshly loaded model starts with. */
export function initialSettings(info: ModelInfo, catalogId: string | null): FinetuneConfig {
  const m = catalogId ? catalogModel(catalogId) : undefined;
  return m ? { ...DEFAULT_SETTINGS, ...m.preset } : familyDefaults(info);
}

export function presetsFor(info: ModelInfo | null, catalogId: string | null): Preset[] {
  if (!info) return [];
  const base = initialSettings(info, catalogId);
  const quick: Partial<FinetuneConfig> = {
    max_steps: 30,
    per_device_train_batch_size: Math.min(base.per_device_train_batch_size, 4),
    gradient_accumulation_steps: 1,
    warmup_steps: 3,
    eval_steps: 10,
  };
  return [
    { id: 'recommended', label: `Recommended for ${info.name}`, settings: base },
    { id: 'quick', label: 'Quick try (30 steps)', settings: { ...base, ...quick } },
    {
      id: 'long',
      label: 'Longer run (3× the epochs, rank 16)',
      settings: { ...base, num_train_epochs: 3 * base.num_train_epochs, max_steps: -1, r: 16, lora_alpha: 32 },
    },
  ];
}
