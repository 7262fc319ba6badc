/**
 * `train_trl.py` of an exported run: the run's settings as PEFT's `LoraConfig` and TRL's `SFTConfig` (which extends
 * transformers' `TrainingArguments`), one keyword per line under its Hugging Face name, then `SFTTrainer`. Launched
 * with `python train_trl.py` on one GPU or `accelerate launch --num_processes N train_trl.py` on several.
 *
 * Names checked against TRL's SFTConfig (max_length — max_seq_length before TRL 0.20 —, packing, eos_token,
 * completion_only_loss, assistant_only_loss, dataset_text_field, pad_to_multiple_of), transformers'
 * TrainingArguments (eval_strategy, eval_steps, save_strategy, save_steps, lr_scheduler_type, warmup_ratio,
 * warmup_steps, …) and PEFT's LoraConfig (r, lora_alpha, lora_dropout, target_modules, use_rslora, bias, task_type).
 *
 * Browser-safe: no node: imports.
 */
import type { ExportPlan } from './export-plan';

/** A Python literal for a JSON-like value (JSON strings are valid Python strings). */
export function pyLiteral(v: unknown): string {
  if (v === null || v === undefined) return 'None';
  if (v === true) return 'True';
  if (v === false) return 'False';
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw new Error(`pyLiteral: ${v} has no Python literal`);
    return String(v);
  }
  if (typeof v === 'string') return JSON.stringify(v);
  if (Array.isArray(v)) return `[${v.map(pyLiteral).join(', ')}]`;
  throw new Error(`pyLiteral: unsupported value ${JSON.stringify(v)}`);
}

const kwargs = (o: Record<string, unknown>, indent = '    '): string =>
  Object.entries(o)
    .map(([k, v]) => `${indent}${k}=${pyLiteral(v)},`)
    .join('\n');

/** The LoraConfig keyword arguments of a plan (PEFT names). */
export function trlLoraKwargs(p: ExportPlan): Record<string, unknown> {
  const c = p.config;
  return {
    r: c.r,
    lora_alpha: c.lora_alpha,
    lora_dropout: c.lora_dropout,
    target_modules: p.targetModules,
    use_rslora: c.use_rslora,
    bias: 'none',
    task_type: 'CAUSAL_LM',
  };
}

/** The SFTConfig keyword arguments of a plan (TRL / transformers names). */
export function trlSftKwargs(p: ExportPlan): Record<string, unknown> {
  const c = p.config;
  const hasEval = p.files.validation !== null && c.eval_strategy !== 'no';
  const o: Record<string, unknown> = {
    output_dir: 'out-trl',
    learning_rate: c.learning_rate,
    lr_scheduler_type: c.lr_scheduler_type,
    warmup_ratio: c.warmup_ratio,
    warmup_steps: c.warmup_steps,
    weight_decay: c.weight_decay,
    max_grad_norm: c.max_grad_norm,
    optim: 'adamw_torch',
    adam_beta1: c.adam_beta1,
    adam_beta2: c.adam_beta2,
    adam_epsilon: c.adam_epsilon,
    per_device_train_batch_size: c.per_device_train_batch_size,
    per_device_eval_batch_size: c.per_device_eval_batch_size,
    gradient_accumulation_steps: c.gradient_accumulation_steps,
    num_train_epochs: c.num_train_epochs,
    max_steps: c.max_steps,
    max_length: c.max_length,
    packing: c.packing,
    pad_to_multiple_of: c.pad_to_multiple_of,
    group_by_length: c.group_by_length,
    gradient_checkpointing: c.gradient_checkpointing,
    seed: c.seed,
    data_seed: c.seed,
    logging_steps: c.logging_steps,
    eval_strategy: hasEval ? c.eval_strategy : 'no',
    eval_steps: c.eval_steps ?? c.logging_steps,
    save_strategy: 'steps',
    save_steps: p.saveSteps,
    report_to: 'none',
  };
  if (p.mainKind === 'messages') o.assistant_only_loss = !c.train_on_inputs && p.generationBlocks;
  else if (p.mainKind === 'prompt_completion') o.completion_only_loss = !c.train_on_inputs;
  else o.dataset_text_field = 'text';
  if (p.trlEosToken !== null) o.eos_token = p.trlEosToken;
  return o;
}

/** The text of train_trl.py. */
export function trlScript(p: ExportPlan): string {
  const files = p.files;
  const dataFiles: string[] = [`"train": ${pyLiteral(files.train)}`];
  if (files.validation !== null) dataFiles.push(`"validation": ${pyLiteral(files.validation)}`);
  const template = p.chatTemplateFile
    ? `# The run's prompt template as a Jinja chat template ({% generation %} marks the trained assistant tokens).
with open(os.path.join(HERE, ${pyLiteral(p.chatTemplateFile)}), encoding="utf-8") as f:
    tokenizer.chat_template = f.read()
`
    : '';
  return `"""Fine-tune ${p.baseModel} with LoRA as webtune run "${p.runName.replace(/["\\]/g, '')}" did (TRL SFTTrainer + PEFT).

One GPU:    python train_trl.py
Several:    accelerate launch --config_file accelerate_config.yaml --num_processes N train_trl.py
The adapter (adapter_config.json + adapter_model.safetensors) is written to out-trl/; webtune imports it
(Import an adapter, or --adapter out-trl). Settings webtune could not map are listed in README.md.
"""
import os

from datasets import load_dataset
from peft import LoraConfig
from transformers import AutoTokenizer
from trl import SFTConfig, SFTTrainer

HERE = os.path.dirname(os.path.abspath(__file__))
# A bigger model of the same family takes the same template and data: change this line (see README.md).
BASE_MODEL = ${pyLiteral(p.baseModel)}

tokenizer = AutoTokenizer.from_pretrained(BASE_MODEL)
${template}
data = load_dataset(
    "json",
    data_files={${dataFiles.map((d) => d.replace(/"(data\/[^"]+)"/g, 'os.path.join(HERE, "$1")')).join(', ')}},
)

peft_config = LoraConfig(
${kwargs(trlLoraKwargs(p))}
)

args = SFTConfig(
${kwargs(trlSftKwargs(p))}
)

trainer = SFTTrainer(
    model=BASE_MODEL,
    args=args,
    train_dataset=data["train"],
    eval_dataset=data["validation"] if "validation" in data else None,
    processing_class=tokenizer,
    peft_config=peft_config,
)
trainer.train()
trainer.save_model(args.output_dir)  # the final adapter, in PEFT's layout
`;
}

/** accelerate_config.yaml: data-parallel (DDP) on every GPU of one machine; FSDP as a commented alternative. */
export function accelerateConfig(): string {
  return `# accelerate launch --config_file accelerate_config.yaml --num_processes N train_trl.py
# Data-parallel (DDP): each GPU holds the model and trains on its share of every batch.
compute_environment: LOCAL_MACHINE
distributed_type: MULTI_GPU
num_machines: 1
machine_rank: 0
num_processes: 2 # overridden by --num_processes
mixed_precision: 'no' # webtune trains in float32; bf16 is faster on recent GPUs
gpu_ids: all
main_training_function: main
rdzv_backend: static
same_network: true
use_cpu: false
# For a model too big for one GPU, shard it with FSDP instead (replace distributed_type above):
# distributed_type: FSDP
# fsdp_config:
#   fsdp_version: 2
#   fsdp_auto_wrap_policy: TRANSFORMER_BASED_WRAP
#   fsdp_cpu_ram_efficient_loading: true
#   fsdp_offload_params: false
#   fsdp_reshard_after_forward: true
#   fsdp_state_dict_type: SHARDED_STATE_DICT
`;
}
