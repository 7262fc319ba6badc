/**
 * README.md of an exported run (src/train/export-run.ts): what the folder holds, the exact commands for TRL
 * (`accelerate launch`) and Axolotl (`axolotl train`), how to move to a bigger model of the same family, how to bring
 * the adapter back into webtune, and every setting without an exact equivalent in a target.
 *
 * Browser-safe: no node: imports.
 */
import type { ExportPlan, RunExportInput } from './export-plan';

const count = (n: number, what: string) => `${n} ${what}${n === 1 ? '' : 's'}`;

export function exportReadme(p: ExportPlan, input: RunExportInput): string {
  const c = p.config;
  const s = input.splits;
  const lines: string[] = [
    `# ${p.runName}: a webtune run for TRL and Axolotl`,
    '',
    `The same LoRA fine-tune of \`${p.baseModel}\` that webtune ran in the browser, ready for GPUs: the data exactly as it ` +
      `was trained (${count(s.train.length, 'training example')}, ${count(s.validation.length, 'validation example')}, ` +
      `${count(s.test.length, 'held-out test example')}), the prompt template, and every setting under its TRL / PEFT / ` +
      'Axolotl name.',
    '',
    '| file | what |',
    '| --- | --- |',
  ];
  const row = (f: string, what: string) => lines.push(`| \`${f}\` | ${what} |`);
  for (const f of [p.files.train, p.files.validation, p.files.test]) if (f) row(f, rowsWhat(p));
  if (p.chatTemplateFile)
    row(
      p.chatTemplateFile,
      `the run's template (${input.template.kind}) as a Jinja chat template; {% generation %} marks the trained tokens`,
    );
  row('train_trl.py', 'TRL SFTTrainer with LoraConfig + SFTConfig carrying every setting');
  row('accelerate_config.yaml', 'multi-GPU data parallel (DDP); FSDP commented');
  row('axolotl.yaml', 'the same run for Axolotl');
  row('requirements.txt', 'Python packages');
  row('webtune_run.json', "webtune's own configuration of the run (FinetuneConfig names)");
  lines.push(
    '',
    '## Run it',
    '',
    '```sh',
    'pip install -r requirements.txt',
    'python train_trl.py                                   # one GPU',
    'accelerate launch --config_file accelerate_config.yaml --num_processes N train_trl.py   # N GPUs (DDP)',
    '',
    'pip install axolotl',
    'axolotl train axolotl.yaml                            # Axolotl, on the visible GPUs',
    '```',
    '',
    'TRL writes the adapter to `out-trl/`, Axolotl to `out-axolotl/` (and `checkpoint-N/` folders every ' +
      `${p.saveSteps} steps). Both are PEFT folders (\`adapter_config.json\` + \`adapter_model.safetensors\`).`,
    '',
    '## A bigger model of the same family',
    '',
    `Change \`BASE_MODEL\` in \`train_trl.py\` and \`base_model\` in \`axolotl.yaml\` (now \`${p.baseModel}\`) to a larger ` +
      'checkpoint of the same architecture and tokenizer (e.g. another size of the same Llama / Qwen / GPT-2 release). ' +
      'The data, template and settings carry over; raise `max_length` / `sequence_len` if the new model has a longer ' +
      'context, and lower `per_device_train_batch_size` / `micro_batch_size` if it does not fit (raise ' +
      '`gradient_accumulation_steps` to keep the batch). A model with another tokenizer needs the template checked: ' +
      (p.chatTemplateFile
        ? `\`${p.chatTemplateFile}\` uses ${c.eos_token !== null ? `the literal end-of-response string ${JSON.stringify(c.eos_token)}` : "the tokenizer's `eos_token`"}.`
        : 'the data has no template.'),
    '',
  );
  if (input.modelSource && input.modelSource !== p.baseModel)
    lines.push(
      `webtune loaded the model from \`${input.modelSource}\`. ${
        /\.bin$/i.test(input.modelSource)
          ? 'It is a llama2.c checkpoint, which transformers does not read: convert it to a transformers Llama folder ' +
            "(q/k rows in the Hugging Face RoPE layout, as webtune's adapters are) and set BASE_MODEL / base_model " +
            'to that folder, or pick the transformers model of the same family you want to scale to.'
          : ''
      }`,
      '',
    );
  lines.push(
    '## Bring the adapter back',
    '',
    'In the page: Compare → Import an adapter, and pick the `out-trl/` (or `out-axolotl/`, or a `checkpoint-N/`) folder. ' +
      'On the command line: `webtune generate --model <the base> --adapter out-trl …` or `webtune score … --adapter out-trl`. ' +
      `The held-out rows (\`${p.files.test ?? 'data/test.jsonl'}\`) are the ones webtune compares on.`,
    '',
    '## Settings',
    '',
    '| webtune (FinetuneConfig) | value | TRL / PEFT | Axolotl |',
    '| --- | --- | --- | --- |',
  );
  const map: [string, unknown, string, string][] = [
    ['r', c.r, 'LoraConfig.r', 'lora_r'],
    ['lora_alpha', c.lora_alpha, 'LoraConfig.lora_alpha', 'lora_alpha'],
    ['lora_dropout', c.lora_dropout, 'LoraConfig.lora_dropout', 'lora_dropout'],
    [
      'target_modules',
      p.targetModules,
      'LoraConfig.target_modules',
      p.targetModules === 'all-linear' ? 'lora_target_linear' : 'lora_target_modules',
    ],
    ['use_rslora', c.use_rslora, 'LoraConfig.use_rslora', 'peft_use_rslora'],
    ['learning_rate', c.learning_rate, 'learning_rate', 'learning_rate'],
    ['lr_scheduler_type', c.lr_scheduler_type, 'lr_scheduler_type', 'lr_scheduler'],
    [
      'warmup_ratio / warmup_steps',
      `${c.warmup_ratio} / ${c.warmup_steps}`,
      'warmup_ratio / warmup_steps',
      'warmup_ratio / warmup_steps',
    ],
    ['weight_decay', c.weight_decay, 'weight_decay', 'weight_decay'],
    ['max_grad_norm', c.max_grad_norm, 'max_grad_norm', 'max_grad_norm'],
    [
      'adam_beta1 / adam_beta2 / adam_epsilon',
      `${c.adam_beta1} / ${c.adam_beta2} / ${c.adam_epsilon}`,
      'adam_beta1 / adam_beta2 / adam_epsilon (optim adamw_torch)',
      'adam_beta1 / adam_beta2 / adam_epsilon (optimizer adamw_torch)',
    ],
    ['per_device_train_batch_size', c.per_device_train_batch_size, 'per_device_train_batch_size', 'micro_batch_size'],
    ['per_device_eval_batch_size', c.per_device_eval_batch_size, 'per_device_eval_batch_size', 'eval_batch_size'],
    [
      'gradient_accumulation_steps',
      c.gradient_accumulation_steps,
      'gradient_accumulation_steps',
      'gradient_accumulation_steps',
    ],
    ['num_train_epochs', c.num_train_epochs, 'num_train_epochs', 'num_epochs'],
    ['max_steps', c.max_steps, 'max_steps', 'max_steps (only when > 0)'],
    ['max_length', c.max_length, 'max_length', 'sequence_len'],
    ['packing', c.packing, 'packing', 'sample_packing'],
    [
      'train_on_inputs',
      c.train_on_inputs,
      p.mainKind === 'messages'
        ? 'assistant_only_loss = not it'
        : p.mainKind === 'prompt_completion'
          ? 'completion_only_loss = not it'
          : '— (texts are trained whole)',
      'train_on_inputs (+ roles_to_train)',
    ],
    ['eos_token', c.eos_token, 'eos_token', 'in the chat template'],
    ['seed', c.seed, 'seed, data_seed', 'seed'],
    ['logging_steps', c.logging_steps, 'logging_steps', 'logging_steps'],
    [
      'eval_strategy / eval_steps',
      `${c.eval_strategy} / ${c.eval_steps ?? c.logging_steps}`,
      'eval_strategy / eval_steps',
      'eval_steps / evals_per_epoch',
    ],
    ['save_steps', p.saveSteps, 'save_steps', 'save_steps'],
    ['gradient_checkpointing', c.gradient_checkpointing, 'gradient_checkpointing', 'gradient_checkpointing'],
    ['group_by_length', c.group_by_length, 'group_by_length', 'group_by_length'],
    ['pad_to_multiple_of', c.pad_to_multiple_of, 'pad_to_multiple_of', '—'],
    ['template', input.template.kind, 'tokenizer.chat_template', 'chat_template: jinja + chat_template_jinja'],
    [
      'val_size / test_size',
      `${c.val_size} / ${c.test_size}`,
      'the exported split files',
      'test_datasets, val_set_size: 0',
    ],
  ];
  for (const [w, v, t, a] of map) lines.push(`| ${w} | \`${JSON.stringify(v)}\` | ${t} | ${a} |`);
  lines.push('', '## What differs, and what was done instead', '');
  for (const note of p.notes) lines.push(`- ${note}`);
  lines.push('');
  return lines.join('\n');
}

function rowsWhat(p: ExportPlan): string {
  switch (p.mainKind) {
    case 'messages':
      return 'conversations, `{"messages": [{"role", "content"}]}` (TRL conversational / Axolotl chat_template)';
    case 'prompt_completion':
      return 'prompt-completion pairs, `{"prompt", "completion"}` (TRL); rendered segments for Axolotl in `*.segments.jsonl`';
    case 'text':
      return 'texts, `{"text"}` (TRL language modeling / Axolotl completion)';
  }
}
