/**
 * A run's prompt template written out as a Hugging Face Jinja chat template (tokenizer_config.json
 * `chat_template`), for TRL's SFTTrainer (`assistant_only_loss`, which needs `{% generation %}` blocks, as
 * transformers' `apply_chat_template(return_assistant_tokens_mask=True)`) and Axolotl (`chat_template: jinja` with
 * `chat_template_jinja`).
 *
 * Each template mirrors its renderer in src/data/templates.ts character for character: rendered by the page's own
 * chat-template renderer on the exported messages, it gives the same text and the same trained spans (the test in
 * test/train/export-run.test.ts checks ids and masks). Conventions the exported rows follow (src/train/export-rows.ts):
 * - a user message from an instruction dataset carries `instruction` and `input` beside `content` (the Stanford
 *   Alpaca prompt renders them apart);
 * - an assistant message that is not trained carries `weight: 0` (OpenAI's convention; Axolotl's
 *   `message_field_training: weight`); it is written outside the `{% generation %}` block.
 * The EOS after each response is the `eos_token` variable, or the run's own `eos_token` string when it set one
 * (TRL's SFTConfig eos_token), written literally.
 *
 * Browser-safe: no node: imports.
 */
import {
  STANFORD_ALPACA_PROMPT_INPUT,
  STANFORD_ALPACA_PROMPT_NO_INPUT,
  TemplateError,
  type TemplateSpec,
  type TemplateTokens,
} from '../data';

/** A Jinja string literal (the escapes JSON writes are valid in Jinja's Python-like literals). */
const lit = (s: string): string => JSON.stringify(s);

const PREAMBLE_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n';
const PREAMBLE_NO_INPUT =
  'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n';

/**
 * First pass over the messages: the system text (all system messages joined by a blank line, as toTurns does) and
 * whether there is one.
 */
const SYSTEM_PASS = `{%- set sys = namespace(text='', has=false) -%}
{%- for message in messages -%}
{%- if message['role'] == 'system' -%}
{%- if sys.has -%}{%- set sys.text = sys.text ~ '\\n\\n' ~ message['content'] -%}{%- else -%}{%- set sys.text = message['content'] -%}{%- endif -%}
{%- set sys.has = true -%}
{%- endif -%}
{%- endfor -%}`;

/**
 * Collects the user messages of a turn into ns.user (joined by a blank line) and ns.instruction / ns.input (of a
 * single instruction-dataset message; otherwise the joined text and no input), then renders `PROMPT` and the reply.
 */
function turnLoop(prompt: string, reply: string, generationPrompt: string): string {
  return `{%- set ns = namespace(user='', n=0, instruction='', input='', k=0) -%}
{%- for message in messages -%}
{%- if message['role'] == 'user' -%}
{%- if ns.n == 0 -%}{%- set ns.user = message['content'] -%}{%- else -%}{%- set ns.user = ns.user ~ '\\n\\n' ~ message['content'] -%}{%- endif -%}
{%- set ns.n = ns.n + 1 -%}
{%- if ns.n == 1 and message['instruction'] is defined and message['instruction'] is not none -%}
{%- set ns.instruction = message['instruction'] -%}
{%- if message['input'] is defined and message['input'] is not none -%}{%- set ns.input = message['input'] -%}{%- else -%}{%- set ns.input = '' -%}{%- endif -%}
{%- else -%}
{%- set ns.instruction = ns.user -%}{%- set ns.input = '' -%}
{%- endif -%}
{%- elif message['role'] == 'assistant' -%}
${prompt}
{%- if message['weight'] is defined and message['weight'] == 0 -%}
${reply}
{%- else -%}
{%- generation -%}
${reply}
{%- endgeneration -%}
{%- endif -%}
{%- set ns.user = '' -%}{%- set ns.n = 0 -%}{%- set ns.k = ns.k + 1 -%}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt and ns.n > 0 -%}
${generationPrompt}
{%- endif -%}`;
}

function alpacaJinja(eos: string): string {
  // The Stanford prompts with the instruction and input spliced in; a system text replaces the preamble.
  const [inA, inRest] = STANFORD_ALPACA_PROMPT_INPUT.slice(PREAMBLE_INPUT.length).split('{instruction}');
  const [inB, inC] = inRest.split('{input}');
  const [noA, noB] = STANFORD_ALPACA_PROMPT_NO_INPUT.slice(PREAMBLE_NO_INPUT.length).split('{instruction}');
  const prompt = `{%- if ns.k == 0 -%}
{%- if ns.input != '' -%}
{%- if sys.has -%}{{ sys.text ~ '\\n\\n' }}{%- else -%}{{ ${lit(PREAMBLE_INPUT)} }}{%- endif -%}
{{ ${lit(inA)} ~ ns.instruction ~ ${lit(inB)} ~ ns.input ~ ${lit(inC)} }}
{%- else -%}
{%- if sys.has -%}{{ sys.text ~ '\\n\\n' }}{%- else -%}{{ ${lit(PREAMBLE_NO_INPUT)} }}{%- endif -%}
{{ ${lit(noA)} ~ ns.instruction ~ ${lit(noB)} }}
{%- endif -%}
{%- elif ns.input != '' -%}
{{ '\\n\\n### Instruction:\\n' ~ ns.instruction ~ '\\n\\n### Input:\\n' ~ ns.input ~ '\\n\\n### Response:' }}
{%- else -%}
{{ '\\n\\n### Instruction:\\n' ~ ns.instruction ~ '\\n\\n### Response:' }}
{%- endif -%}`;
  return `${SYSTEM_PASS}\n${turnLoop(prompt, `{{ message['content'] ~ ${eos} }}`, prompt)}`;
}

function instructionJinja(eos: string): string {
  const prompt = `{%- if ns.k == 0 and sys.has -%}{{ sys.text ~ '\\n\\n' }}{%- endif -%}
{%- if ns.k > 0 -%}{{ '\\n\\n' }}{%- endif -%}
{{ '### Instruction:\\n' ~ ns.user ~ '\\n\\n### Response:\\n' }}`;
  return `${SYSTEM_PASS}\n${turnLoop(prompt, `{{ message['content'] ~ ${eos} }}`, prompt)}`;
}

function chatmlJinja(eos: string, eosIsImEnd: boolean): string {
  const reply = eosIsImEnd
    ? `{{ message['content'] ~ '<|im_end|>' }}`
    : `{{ message['content'] ~ '<|im_end|>' ~ ${eos} }}`;
  return `{%- for message in messages -%}
{%- if message['role'] == 'assistant' -%}
{{ '<|im_start|>assistant\\n' }}
{%- if message['weight'] is defined and message['weight'] == 0 -%}
${reply}
{%- else -%}
{%- generation -%}
${reply}
{%- endgeneration -%}
{%- endif -%}
{{ '\\n' }}
{%- else -%}
{{ '<|im_start|>' ~ message['role'] ~ '\\n' ~ message['content'] ~ '<|im_end|>\\n' }}
{%- endif -%}
{%- endfor -%}
{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}`;
}

/** Jinja expressions for a custom template's text with its {instruction} {input} {system} placeholders. */
function customText(text: string): string {
  const parts: string[] = [];
  let last = 0;
  for (const m of text.matchAll(/\{(instruction|input|system)\}/g)) {
    if (m.index > last) parts.push(lit(text.slice(last, m.index)));
    parts.push(`v_${m[1]}`);
    last = m.index + m[0].length;
  }
  if (last < text.length) parts.push(lit(text.slice(last)));
  return parts.length ? parts.join(' ~ ') : "''";
}

function customJinja(spec: Extract<TemplateSpec, { kind: 'custom' }>, eos: string): string {
  for (const t of [spec.template, spec.templateNoInput]) {
    if (t === undefined) continue;
    const n = t.split('{output}').length - 1;
    if (n !== 1)
      throw new TemplateError(`custom template must contain {output} exactly once (found ${n}): ${JSON.stringify(t)}`);
  }
  const usesSystem = spec.template.includes('{system}');
  const variant = (template: string): string => {
    const [before, after] = template.split('{output}');
    const hasInputSlot = template.includes('{input}');
    return `{%- set v_instruction = ${hasInputSlot ? 'ns.instruction' : 'ns.user'} -%}
{%- set v_input = ${hasInputSlot ? 'ns.input' : "''"} -%}
{%- set v_system = (sys.text if ns.k == 0 else '') -%}
{%- set before = ${customText(before)} -%}
{%- set after = ${customText(after)} -%}`;
  };
  const noInput = spec.templateNoInput;
  const choose =
    noInput === undefined
      ? variant(spec.template)
      : `{%- if ns.input == '' -%}\n${variant(noInput)}\n{%- else -%}\n${variant(spec.template)}\n{%- endif -%}`;
  const prompt = `{%- if ns.k == 0 and sys.has and ${usesSystem ? 'false' : 'true'} -%}{{ sys.text ~ '\\n\\n' }}{%- endif -%}
{%- if ns.k > 0 -%}{{ ${lit(spec.separator ?? '\n\n')} }}{%- endif -%}
${choose}
{{ before }}`;
  // As renderCustom: an EOS the template writes right after {output} is the response's EOS, not a second one.
  const reply = `{{ message['content'] ~ ${eos} }}`;
  const afterText = `{%- if after.startswith(${eos}) -%}{{ after[(${eos})|length:] }}{%- else -%}{{ after }}{%- endif -%}`;
  const loop = turnLoop(prompt, reply, prompt).replace(
    "{%- set ns.user = '' -%}{%- set ns.n = 0 -%}",
    `${afterText}\n{%- set ns.user = '' -%}{%- set ns.n = 0 -%}`,
  );
  return `${SYSTEM_PASS}\n${loop}`;
}

/**
 * The Jinja chat template of a run's template. `eosOverride` is the run's eos_token (written literally); otherwise the
 * template uses the tokenizer's `eos_token`. A chat_template run keeps its template as it is (the tokenizer's own, or
 * the custom Jinja the run used); the `raw` template has no conversation form (null: prompt/completion rows instead).
 */
export function templateToJinja(spec: TemplateSpec, tokens: TemplateTokens, eosOverride: string | null): string | null {
  const eos = eosOverride !== null ? lit(eosOverride) : 'eos_token';
  switch (spec.kind) {
    case 'alpaca':
      return alpacaJinja(eos);
    case 'instruction':
      return instructionJinja(eos);
    case 'chatml':
      return chatmlJinja(eos, (eosOverride ?? tokens.eosToken) === '<|im_end|>');
    case 'custom':
      return customJinja(spec, eos);
    case 'chat_template': {
      const source = spec.template ?? tokens.chatTemplate;
      if (!source) throw new TemplateError('the tokenizer has no chat_template; the run cannot be exported with it');
      return source;
    }
    case 'raw':
      return null;
  }
}

/** Whether a Jinja chat template marks assistant turns with {% generation %} (TRL's assistant_only_loss needs it). */
export function hasGenerationBlocks(jinja: string): boolean {
  return /\{%-?\s*generation\s*-?%\}/.test(jinja);
}
