/**
 * Prompt templates: render an {@link Example} into text segments, each marked trained or not.
 *
 * Templates:
 * - `alpaca`: Stanford Alpaca's train.py PROMPT_DICT exactly: `prompt_input` when the input is not the empty
 *   string, else `prompt_no_input`; both end in "### Response:" with no newline, and the target is
 *   `output + EOS`. Later turns (LLaMA-Factory `history`) repeat "\n\n### Instruction:\n…### Response:" without
 *   the preamble; a system message replaces the preamble.
 * - `chatml`: `<|im_start|>{role}\n{content}<|im_end|>\n`; the assistant content and its `<|im_end|>` are trained.
 * - `instruction`: "### Instruction:\n{user}\n\n### Response:\n{output}" + EOS, turns separated by a blank line.
 * - `custom`: a user template with {instruction}, {input}, {output} (and optionally {system}) placeholders.
 * - `chat_template`: the model's own Jinja chat template (tokenizer_config.json `chat_template`), rendered with
 *   @huggingface/jinja. Assistant spans are found by rendering prefixes of the conversation (prompt =
 *   messages[:i] with add_generation_prompt, turn = messages[:i+1]), which gives what HF's
 *   `return_assistant_tokens_mask` gives for templates with {% generation %} blocks: the assistant content
 *   plus the end-of-turn marker the template writes right after it (e.g. `<|im_end|>`, `</s>`, `<|eot_id|>`).
 * - `raw`: no template: prompt/completion examples as prompt + completion, text examples as is.
 *
 * Text examples ({text}) are always the whole text, trained, plus EOS (continued pre-training), whatever the template.
 *
 * EOS: every trained response is followed by the tokenizer's EOS token unless the template already ends the
 * turn with it (ChatML when EOS is `<|im_end|>`, chat templates that emit eos_token). The EOS is written as
 * its token string; tokenization turns token strings into their ids.
 *
 * Browser-safe: no node: imports.
 */
import { Template } from '@huggingface/jinja';
import { DEFAULT_TEMPLATE_BUDGET, renderWithBudget, TemplateBudgetError } from './template-budget';
import type { Tokenizer } from '../io/tokenizer';
import { isChat, isPromptCompletion, isText, type Example, type Message } from './formats';

export interface Segment {
  text: string;
  /** True: these characters' tokens are trained (label = token id). */
  train: boolean;
}

export type TemplateSpec =
  | { kind: 'alpaca' }
  | { kind: 'chatml' }
  | { kind: 'instruction' }
  | {
      kind: 'custom';
      /** Must contain {output} once; text before it is the prompt, text after it follows the EOS. */
      template: string;
      /** Used instead of `template` when the input is empty (as Stanford's prompt_no_input). */
      templateNoInput?: string;
      /** Between turns of a multi-turn conversation. Default "\n\n". */
      separator?: string;
    }
  | {
      kind: 'chat_template';
      /** Jinja source; default the tokenizer's chat_template. */
      template?: string;
      /** Extra template variables, as apply_chat_template's **kwargs (e.g. Qwen3's {"enable_thinking": false}). */
      chat_template_kwargs?: Record<string, unknown>;
    }
  | { kind: 'raw' };

export type TemplateName = TemplateSpec['kind'];

/** The special-token strings templates need. */
export interface TemplateTokens {
  bosToken: string | null;
  eosToken: string | null;
  chatTemplate: string | null;
  /** All special tokens by role (bos_token, eos_token, pad_token, unk_token, …), passed to Jinja templates. */
  specialTokens: Record<string, string>;
}

export function templateTokensOf(tok: Tokenizer): TemplateTokens {
  const bos = tok.specialTokens.bos_token ?? (tok.bosTokenId !== null ? (tok.idToToken(tok.bosTokenId) ?? null) : null);
  const eos = tok.specialTokens.eos_token ?? (tok.eosTokenId !== null ? (tok.idToToken(tok.eosTokenId) ?? null) : null);
  return { bosToken: bos, eosToken: eos, chatTemplate: tok.chatTemplate, specialTokens: { ...tok.specialTokens } };
}

export class TemplateError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'TemplateError';
  }
}

export const STANFORD_ALPACA_PROMPT_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:';
export const STANFORD_ALPACA_PROMPT_NO_INPUT =
  'Below is an instruction that describes a task. ' +
  'Write a response that appropriately completes the request.\n\n' +
  '### Instruction:\n{instruction}\n\n### Response:';

const ALPACA_PREAMBLE_INPUT =
  'Below is an instruction that describes a task, paired with an input that provides further context. ' +
  'Write a response that appropriately completes the request.\n\n';
const ALPACA_PREAMBLE_NO_INPUT =
  'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n';

/** Fills {instruction} {input} {output} {system} placeholders (only those names; other braces are literal). */
export function fillPlaceholders(
  template: string,
  values: Partial<Record<'instruction' | 'input' | 'output' | 'system', string>>,
): string {
  return template.replace(/\{(instruction|input|output|system)\}/g, (m, k: keyof typeof values) => values[k] ?? m);
}

interface Turn {
  system?: string;
  user: Message;
  assistant: Message;
}

/** Splits a conversation into (user, assistant) turns; consecutive user messages are joined by a blank line. */
function toTurns(messages: Message[]): { system: string | null; turns: Turn[] } {
  let system: string | null = null;
  const turns: Turn[] = [];
  let pendingUser: Message[] = [];
  for (const m of messages) {
    if (m.role === 'system') system = system === null ? m.content : `${system}\n\n${m.content}`;
    else if (m.role === 'user') pendingUser.push(m);
    else {
      const user: Message =
        pendingUser.length === 1
          ? pendingUser[0]
          : { role: 'user', content: pendingUser.map((u) => u.content).join('\n\n') };
      turns.push({ user, assistant: m });
      pendingUser = [];
    }
  }
  return { system, turns };
}

const instructionOf = (u: Message) => u.instruction ?? u.content;
const inputOf = (u: Message) => (u.instruction !== undefined ? (u.input ?? '') : '');

class SegmentBuilder {
  readonly segments: Segment[] = [];
  push(text: string, train: boolean): void {
    if (text === '') return;
    const last = this.segments[this.segments.length - 1];
    if (last && last.train === train) last.text += text;
    else this.segments.push({ text, train });
  }
  /** A response: trained unless the message is marked train:false; EOS follows when given. */
  response(text: string, train: boolean, eos: string | null): void {
    this.push(text, train);
    if (eos) this.push(eos, train);
  }
}

function asMessages(ex: Example): Message[] {
  if (isChat(ex)) return ex.messages;
  if (isPromptCompletion(ex))
    return [
      { role: 'user', content: ex.prompt },
      { role: 'assistant', content: ex.completion },
    ];
  throw new TemplateError('text examples have no messages');
}

function renderAlpaca(messages: Message[], eos: string | null): Segment[] {
  const { system, turns } = toTurns(messages);
  const b = new SegmentBuilder();
  turns.forEach((t, k) => {
    const instruction = instructionOf(t.user);
    const input = inputOf(t.user);
    const hasInput = input !== ''; // Stanford: example.get("input", "") != ""
    let prompt: string;
    if (k === 0) {
      const template = hasInput ? STANFORD_ALPACA_PROMPT_INPUT : STANFORD_ALPACA_PROMPT_NO_INPUT;
      prompt = fillPlaceholders(template, { instruction, input });
      if (system !== null) {
        const preamble = hasInput ? ALPACA_PREAMBLE_INPUT : ALPACA_PREAMBLE_NO_INPUT;
        prompt = `${system}\n\n${prompt.slice(preamble.length)}`;
      }
    } else {
      prompt = hasInput
        ? `\n\n### Instruction:\n${instruction}\n\n### Input:\n${input}\n\n### Response:`
        : `\n\n### Instruction:\n${instruction}\n\n### Response:`;
    }
    b.push(prompt, false);
    b.response(t.assistant.content, t.assistant.train !== false, eos);
  });
  return b.segments;
}

function renderInstruction(messages: Message[], eos: string | null): Segment[] {
  const { system, turns } = toTurns(messages);
  const b = new SegmentBuilder();
  if (system !== null) b.push(`${system}\n\n`, false);
  turns.forEach((t, k) => {
    b.push(`${k > 0 ? '\n\n' : ''}### Instruction:\n${t.user.content}\n\n### Response:\n`, false);
    b.response(t.assistant.content, t.assistant.train !== false, eos);
  });
  return b.segments;
}

function renderChatML(messages: Message[], eos: string | null): Segment[] {
  const b = new SegmentBuilder();
  const eosIsImEnd = eos === '<|im_end|>';
  for (const m of messages) {
    if (m.role !== 'assistant') {
      b.push(`<|im_start|>${m.role}\n${m.content}<|im_end|>\n`, false);
      continue;
    }
    const train = m.train !== false;
    b.push('<|im_start|>assistant\n', false);
    b.push(`${m.content}<|im_end|>`, train);
    if (eos && !eosIsImEnd) b.push(eos, train);
    b.push('\n', false);
  }
  return b.segments;
}

function renderCustom(
  spec: Extract<TemplateSpec, { kind: 'custom' }>,
  messages: Message[],
  eos: string | null,
): Segment[] {
  for (const t of [spec.template, spec.templateNoInput]) {
    if (t === undefined) continue;
    const n = t.split('{output}').length - 1;
    if (n !== 1)
      throw new TemplateError(`custom template must contain {output} exactly once (found ${n}): ${JSON.stringify(t)}`);
  }
  const { system, turns } = toTurns(messages);
  const b = new SegmentBuilder();
  const usesSystem = spec.template.includes('{system}');
  if (system !== null && !usesSystem) b.push(`${system}\n\n`, false);
  turns.forEach((t, k) => {
    const input = inputOf(t.user);
    const template = input === '' && spec.templateNoInput !== undefined ? spec.templateNoInput : spec.template;
    const hasInputSlot = template.includes('{input}');
    const values = {
      instruction: hasInputSlot ? instructionOf(t.user) : t.user.content,
      input: hasInputSlot ? input : '',
      system: k === 0 ? (system ?? '') : '',
    };
    const [before, after] = template.split('{output}');
    if (k > 0) b.push(spec.separator ?? '\n\n', false);
    b.push(fillPlaceholders(before, values), false);
    const train = t.assistant.train !== false;
    b.push(t.assistant.content, train);
    let rest = fillPlaceholders(after, values);
    if (eos && rest.startsWith(eos)) {
      b.push(eos, train);
      rest = rest.slice(eos.length);
    } else if (eos) b.push(eos, train);
    b.push(rest, false);
  });
  return b.segments;
}

// ---------------------------------------------------------------------------------------------------------
// Jinja chat templates

const compiled = new Map<string, Template>();

function compile(source: string, name: string): Template {
  let t = compiled.get(source);
  if (!t) {
    try {
      t = new Template(source);
    } catch (e) {
      throw new TemplateError(`cannot parse ${name}: ${(e as Error).message}`, { cause: e });
    }
    if (compiled.size > 16) compiled.clear();
    compiled.set(source, t);
  }
  return t;
}

export interface ChatTemplateRenderOptions {
  template: string;
  tokens: TemplateTokens;
  addGenerationPrompt?: boolean;
  /** Extra template variables (apply_chat_template's **kwargs): they override special tokens, not the fixed ones. */
  chat_template_kwargs?: Record<string, unknown>;
  /** Which template this is, for messages (default: the tokenizer's or the custom one, by comparison). */
  name?: string;
}

/** How messages name a chat template: the tokenizer's own, or one the user gave. */
function templateName(source: string, tokens: TemplateTokens): string {
  return source === tokens.chatTemplate
    ? "the tokenizer's chat template (tokenizer_config.json chat_template)"
    : 'the custom chat template';
}

/** Renders messages with a Jinja chat template as transformers' apply_chat_template(tokenize=False) does. */
export function renderChatTemplate(
  messages: Pick<Message, 'role' | 'content' | 'instruction' | 'input'>[],
  opts: ChatTemplateRenderOptions,
): string {
  const name = opts.name ?? templateName(opts.template, opts.tokens);
  const t = compile(opts.template, name);
  const kwargs = opts.chat_template_kwargs ?? {};
  for (const k of ['messages', 'add_generation_prompt', 'bos_token', 'eos_token'])
    if (Object.hasOwn(kwargs, k))
      throw new TemplateError(
        `chat_template_kwargs: "${k}" is set by the trainer and cannot be given as a template variable`,
      );
  const vars: Record<string, unknown> = {
    ...opts.tokens.specialTokens,
    ...kwargs,
    // An instruction dataset's two parts travel with the user message (exported runs' templates render them apart).
    messages: messages.map((m) =>
      m.instruction !== undefined
        ? { role: m.role, content: m.content, instruction: m.instruction, input: m.input ?? '' }
        : { role: m.role, content: m.content },
    ),
    add_generation_prompt: opts.addGenerationPrompt ?? false,
    bos_token: opts.tokens.bosToken ?? '',
    eos_token: opts.tokens.eosToken ?? '',
  };
  try {
    // Room for the conversation itself: a long message must not look like a runaway template.
    const inputChars = messages.reduce((n, m) => n + m.content.length, 0);
    const budget = { ...DEFAULT_TEMPLATE_BUDGET, maxChars: Math.max(DEFAULT_TEMPLATE_BUDGET.maxChars, 2 * inputChars) };
    return renderWithBudget(t, vars, name, budget);
  } catch (e) {
    if (e instanceof TemplateBudgetError) throw new TemplateError(e.message);
    // @huggingface/jinja's own words (e.g. "Cannot call something that is not a function"), said to be its.
    throw new TemplateError(`${name} failed while rendering (Jinja: ${(e as Error).message})`, { cause: e });
  }
}

function renderWithChatTemplate(
  template: string,
  messages: Message[],
  tokens: TemplateTokens,
  chat_template_kwargs?: Record<string, unknown>,
): Segment[] {
  const eos = tokens.eosToken;
  const full = renderChatTemplate(messages, { template, tokens, chat_template_kwargs });
  const b = new SegmentBuilder();
  let prev = 0; // end of what has been emitted
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i];
    if (m.role !== 'assistant') continue;
    const prompt = renderChatTemplate(messages.slice(0, i), {
      template,
      tokens,
      addGenerationPrompt: true,
      chat_template_kwargs,
    });
    const turn = renderChatTemplate(messages.slice(0, i + 1), { template, tokens, chat_template_kwargs });
    const searchFrom = full.startsWith(prompt) ? Math.max(prev, prompt.length) : prev;
    let content = m.content;
    let start = full.indexOf(content, searchFrom);
    if (start < 0 && content.trim() !== content) {
      content = content.trim();
      start = full.indexOf(content, searchFrom);
    }
    if (start < 0) {
      throw new TemplateError(
        `assistant message ${i} does not appear in the rendered chat template (the template changes its content)`,
      );
    }
    const contentEnd = start + content.length;
    let end = full.startsWith(turn) && turn.length >= contentEnd ? turn.length : contentEnd;
    if (end === contentEnd && eos && full.startsWith(eos, contentEnd)) end += eos.length;
    // Train the content and the end-of-turn marker after it, not the whitespace that separates turns.
    // An EOS written right after the content is trained even when it is whitespace (eos_token "\n").
    const floor = eos && full.startsWith(eos, contentEnd) ? Math.min(end, contentEnd + eos.length) : contentEnd;
    let trainedEnd = end;
    while (trainedEnd > floor && /\s/.test(full[trainedEnd - 1])) trainedEnd--;
    const tail = full.slice(contentEnd, trainedEnd);
    const train = m.train !== false;
    b.push(full.slice(prev, start), false);
    b.push(full.slice(start, trainedEnd), train);
    const emitsEos = !!eos && tail.includes(eos);
    if (eos && !emitsEos) b.push(eos, train);
    prev = trainedEnd;
  }
  b.push(full.slice(prev), false);
  return b.segments;
}

// ---------------------------------------------------------------------------------------------------------

/**
 * Renders one example. Returns the segments in order; their concatenation is the training text.
 * Throws TemplateError when the template cannot render the example.
 */
export function renderExample(example: Example, spec: TemplateSpec, tokens: TemplateTokens): Segment[] {
  const eos = tokens.eosToken;
  if (isText(example)) {
    const b = new SegmentBuilder();
    b.response(example.text, true, eos);
    return b.segments;
  }
  if (spec.kind === 'raw') {
    if (!isPromptCompletion(example)) {
      throw new TemplateError(
        "the 'raw' template renders text and prompt/completion examples only; pick a chat or instruction template for conversations",
      );
    }
    const b = new SegmentBuilder();
    b.push(example.prompt, false);
    b.response(example.completion, true, eos);
    return b.segments;
  }
  const messages = asMessages(example);
  switch (spec.kind) {
    case 'alpaca':
      return renderAlpaca(messages, eos);
    case 'instruction':
      return renderInstruction(messages, eos);
    case 'chatml':
      return renderChatML(messages, eos);
    case 'custom':
      return renderCustom(spec, messages, eos);
    case 'chat_template': {
      const source = spec.template ?? tokens.chatTemplate;
      if (!source) throw new TemplateError('the tokenizer has no chat_template; choose another template');
      return renderWithChatTemplate(source, messages, tokens, spec.chat_template_kwargs);
    }
  }
}

/** The text a model sees at generation time for a prompt (everything before the first trained segment's response). */
export function renderGenerationPrompt(messages: Message[], spec: TemplateSpec, tokens: TemplateTokens): string {
  if (spec.kind === 'chat_template') {
    const source = spec.template ?? tokens.chatTemplate;
    if (!source) throw new TemplateError('the tokenizer has no chat_template');
    return renderChatTemplate(messages, {
      template: source,
      tokens,
      addGenerationPrompt: true,
      chat_template_kwargs: spec.chat_template_kwargs,
    });
  }
  // Render with an empty placeholder answer and cut before it.
  const marker = '\u0000RESPONSE\u0000';
  const segs = renderExample({ messages: [...messages, { role: 'assistant', content: marker }] }, spec, tokens);
  const text = segs.map((s) => s.text).join('');
  return text.slice(0, text.lastIndexOf(marker));
}

/** Default template for a tokenizer: its own chat template if it has one, else Stanford Alpaca. */
export function defaultTemplate(tok: Pick<Tokenizer, 'chatTemplate'>): TemplateSpec {
  return tok.chatTemplate ? { kind: 'chat_template' } : { kind: 'alpaca' };
}
