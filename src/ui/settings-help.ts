/**
 * One line per setting, shown under its field: its Hugging Face name (PEFT LoraConfig, transformers
 * TrainingArguments, TRL SFTConfig) and what raising it does, so a newcomer can reason about it and an expert can
 * find it in the docs they know.
 */
export const SETTING_HELP = {
  r: 'r · the adapter’s size: higher learns more detail, costs more memory and time',
  lora_alpha: 'lora_alpha · update scale (alpha / r): higher makes the adapter’s effect stronger',
  lora_dropout: 'lora_dropout · randomly drops adapter inputs: higher fights overfitting on small data',
  use_rslora: 'use_rslora · scale by alpha/√r: keeps large ranks stable',
  learning_rate: 'learning_rate · step size: higher learns faster but can diverge (NaN)',
  num_train_epochs: 'num_train_epochs · passes over the data: more fits it better, until it overfits',
  max_steps: 'max_steps · optimizer steps in all; 0 = from epochs',
  per_device_train_batch_size: 'per_device_train_batch_size · examples per step: higher is smoother, uses more memory',
  gradient_accumulation_steps:
    'gradient_accumulation_steps · micro-batches per step: a larger batch without more memory, slower steps',
  max_length: 'max_length · tokens per example: longer keeps more text, costs memory and time',
  warmup_steps: 'warmup_steps · steps that ramp the learning rate up from 0: steadies the start',
  lr_scheduler_type: 'lr_scheduler_type · how the learning rate falls over the run',
  weight_decay: 'weight_decay · pulls adapter weights toward 0: higher regularises more',
  max_grad_norm: 'max_grad_norm · clips large gradients (0 = off): lower is steadier, slower to learn',
  eval_steps: 'eval_steps · validation loss and samples every N steps; 0 = only at the end',
  seed: 'seed · same seed, same data order and initial adapter: runs repeat exactly',
  logging_steps: 'logging_steps · one chart point per N steps',
  samplePrompts: 'generations from held-out prompts at each evaluation; 0 = none',
  sampleMaxNewTokens: 'tokens generated per sample: longer shows more, takes longer',
  save_steps: 'save_steps · checkpoint to this browser every N steps; 0 = on pause/stop only',
  gradient_checkpointing: 'gradient_checkpointing · recomputes activations: much less memory, about a third slower',
  frozen_dtype:
    'frozen_dtype · how the frozen base weights are kept: float16 halves and int8 quarters their memory (expanded one layer at a time; LoRA stays float32); lower precision changes the base model slightly',
} as const;
