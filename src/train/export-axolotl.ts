/**
 * `axolotl.yaml` of an exported run: the run's settings under Axolotl's config names (docs.axolotl.ai config
 * reference): base_model, chat_template / chat_template_jinja, datasets (type chat_template with field_messages,
 * roles_to_train, train_on_eos, message_field_training; type completion; type input_output), test_datasets,
 * val_set_size, adapter: lora, lora_r, lora_alpha, lora_dropout, lora_target_modules / lora_target_linear,
 * peft_use_rslora, sequence_len, sample_packing, micro_batch_size, eval_batch_size, gradient_accumulation_steps,
 * num_epochs / max_steps, learning_rate, lr_scheduler, warmup_steps / warmup_ratio, optimizer, adam_*, weight_decay,
 * max_grad_norm, train_on_inputs, seed, logging_steps, eval_steps, save_steps, gradient_checkpointing,
 * group_by_length, output_dir. Serialized with the `yaml` package (block scalars keep the Jinja template readable).
 *
 * Browser-safe: no node: imports.
 */
import { stringify } from 'yaml';
import type { ExportPlan } from './export-plan';

function datasetEntry(p: ExportPlan, path: string): Record<string, unknown> {
  const base = { path, ds_type: 'json', split: 'train' };
  switch (p.mainKind) {
    case 'messages':
      return {
        ...base,
        type: 'chat_template',
        field_messages: 'messages',
        message_property_mappings: { role: 'role', content: 'content' },
        roles_to_train: p.config.train_on_inputs ? ['system', 'user', 'assistant'] : ['assistant'],
        train_on_eos: 'turn',
        message_field_training: 'weight',
      };
    case 'prompt_completion':
      // The rendered segments with their labels: exactly the text and mask of the run.
      return { ...base, path: path.replace(/\.jsonl$/, '.segments.jsonl'), type: 'input_output' };
    case 'text':
      return { ...base, type: 'completion', field: 'text' };
  }
}

/** The Axolotl config of a plan, as an object (keys in Axolotl's names). */
export function axolotlConfig(p: ExportPlan, chatTemplate: string | null): Record<string, unknown> {
  const c = p.config;
  const o: Record<string, unknown> = { base_model: p.baseModel };
  if (chatTemplate !== null) {
    o.chat_template = 'jinja';
    o.chat_template_jinja = chatTemplate;
  }
  o.datasets = [datasetEntry(p, p.files.train)];
  if (p.files.validation !== null) o.test_datasets = [datasetEntry(p, p.files.validation)];
  o.val_set_size = 0; // the validation split is exported as its own file (test_datasets)
  o.dataset_prepared_path = 'last_run_prepared';
  o.output_dir = 'out-axolotl';
  o.adapter = 'lora';
  o.lora_r = c.r;
  o.lora_alpha = c.lora_alpha;
  o.lora_dropout = c.lora_dropout;
  if (p.targetModules === 'all-linear') o.lora_target_linear = true;
  else o.lora_target_modules = p.targetModules;
  o.peft_use_rslora = c.use_rslora;
  o.sequence_len = c.max_length;
  o.sample_packing = c.packing;
  o.pad_to_sequence_len = c.packing;
  o.train_on_inputs = c.train_on_inputs;
  o.micro_batch_size = c.per_device_train_batch_size;
  o.eval_batch_size = c.per_device_eval_batch_size;
  o.gradient_accumulation_steps = c.gradient_accumulation_steps;
  if (c.max_steps > 0) o.max_steps = c.max_steps;
  o.num_epochs = c.num_train_epochs;
  o.learning_rate = c.learning_rate;
  o.lr_scheduler = c.lr_scheduler_type;
  if (c.warmup_steps > 0) o.warmup_steps = c.warmup_steps;
  else o.warmup_ratio = c.warmup_ratio;
  o.optimizer = 'adamw_torch';
  o.adam_beta1 = c.adam_beta1;
  o.adam_beta2 = c.adam_beta2;
  o.adam_epsilon = c.adam_epsilon;
  o.weight_decay = c.weight_decay;
  o.max_grad_norm = c.max_grad_norm;
  o.seed = c.seed;
  o.logging_steps = c.logging_steps;
  if (p.files.validation !== null && c.eval_strategy !== 'no') {
    if (c.eval_strategy === 'epoch') o.evals_per_epoch = 1;
    else o.eval_steps = c.eval_steps ?? c.logging_steps;
  }
  o.save_steps = p.saveSteps;
  o.gradient_checkpointing = c.gradient_checkpointing;
  o.group_by_length = c.group_by_length;
  o.bf16 = false; // webtune trains in float32; set bf16: auto for speed on recent GPUs
  o.tf32 = false;
  return o;
}

/** The text of axolotl.yaml. */
export function axolotlYaml(p: ExportPlan, chatTemplate: string | null): string {
  const head = [
    `# Axolotl config reproducing webtune run "${p.runName}".`,
    '#   axolotl train axolotl.yaml   (launches through accelerate on the visible GPUs)',
    '# The adapter is written to out-axolotl/ (PEFT layout); webtune imports it. Unmapped settings: README.md.',
    '',
  ].join('\n');
  return head + stringify(axolotlConfig(p, chatTemplate), { lineWidth: 0, blockQuote: 'literal' });
}
