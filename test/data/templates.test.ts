import { describe, expect, it } from 'vitest';
import type { Example, Message } from '../../src/data/formats';
import {
  renderChatTemplate,
  renderExample,
  renderGenerationPrompt,
  TemplateError,
  templateTokensOf,
  type Segment,
  type TemplateTokens,
} from '../../src/data/templates';
import { ToyTokenizer } from './toy-tokenizer';

const LLAMA: TemplateTokens = {
  bosToken: '<s>',
  eosToken: '</s>',
  chatTemplate: null,
  specialTokens: { bos_token: '<s>', eos_token: '</s>' },
};
const user = (instruction: string, input = ''): Message => ({
  role: 'user',
  content: input ? `${instruction}\n${input}` : instruction,
  instruction,
  input,
});
const a = (content: string, train?: boolean): Message =>
  train === false ? { role: 'assistant', content, train } : { role: 'assistant', content };
const seg = (text: string, train: boolean): Segment => ({ text, train });
const joined = (s: Segment[]) => s.map((x) => x.text).join('');

describe('Stanford Alpaca template (train.py PROMPT_DICT)', () => {
  it('prompt_no_input: exact prompt, response = output + EOS', () => {
    const ex: Example = { messages: [user('Give three tips for staying healthy.'), a('1. Eat well.')] };
    expect(renderExample(ex, { kind: 'alpaca' }, LLAMA)).toEqual([
      seg(
        'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n' +
          '### Instruction:\nGive three tips for staying healthy.\n\n### Response:',
        false,
      ),
      seg('1. Eat well.</s>', true),
    ]);
  });

  it('prompt_input: exact prompt with ### Input', () => {
    const ex: Example = { messages: [user('Translate to French.', 'Good morning'), a('Bonjour')] };
    expect(renderExample(ex, { kind: 'alpaca' }, LLAMA)).toEqual([
      seg(
        'Below is an instruction that describes a task, paired with an input that provides further context. ' +
          'Write a response that appropriately completes the request.\n\n' +
          '### Instruction:\nTranslate to French.\n\n### Input:\nGood morning\n\n### Response:',
        false,
      ),
      seg('Bonjour</s>', true),
    ]);
  });

  it('history turns follow without the preamble; a system message replaces the preamble', () => {
    const ex: Example = {
      messages: [{ role: 'system', content: 'You are terse.' }, user('Hi'), a('Hello'), user('Add', '1 2'), a('3')],
    };
    expect(renderExample(ex, { kind: 'alpaca' }, LLAMA)).toEqual([
      seg('You are terse.\n\n### Instruction:\nHi\n\n### Response:', false),
      seg('Hello</s>', true),
      seg('\n\n### Instruction:\nAdd\n\n### Input:\n1 2\n\n### Response:', false),
      seg('3</s>', true),
    ]);
  });

  it('messages without instruction/input parts use the content as the instruction', () => {
    const ex: Example = { messages: [{ role: 'user', content: 'Q' }, a('A')] };
    expect(joined(renderExample(ex, { kind: 'alpaca' }, LLAMA))).toBe(
      'Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nQ\n\n### Response:A</s>',
    );
  });
});

describe('ChatML, instruction and custom templates', () => {
  const conv: Example = {
    messages: [
      { role: 'system', content: 'S' },
      { role: 'user', content: 'Hi' },
      a('Yo'),
      { role: 'user', content: 'More' },
      a('Ok'),
    ],
  };

  it('ChatML with a separate EOS: <|im_end|> and EOS trained, newline not', () => {
    expect(renderExample(conv, { kind: 'chatml' }, LLAMA)).toEqual([
      seg('<|im_start|>system\nS<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n', false),
      seg('Yo<|im_end|></s>', true),
      seg('\n<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\n', false),
      seg('Ok<|im_end|></s>', true),
      seg('\n', false),
    ]);
  });

  it('ChatML when EOS is <|im_end|>: no second EOS', () => {
    const qwen = { ...LLAMA, eosToken: '<|im_end|>' };
    const s = renderExample({ messages: [{ role: 'user', content: 'Hi' }, a('Yo')] }, { kind: 'chatml' }, qwen);
    expect(s).toEqual([
      seg('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n', false),
      seg('Yo<|im_end|>', true),
      seg('\n', false),
    ]);
  });

  it('plain instruction template', () => {
    expect(renderExample(conv, { kind: 'instruction' }, LLAMA)).toEqual([
      seg('S\n\n### Instruction:\nHi\n\n### Response:\n', false),
      seg('Yo</s>', true),
      seg('\n\n### Instruction:\nMore\n\n### Response:\n', false),
      seg('Ok</s>', true),
    ]);
  });

  it('assistant turns marked train:false stay untrained (and get no trained EOS)', () => {
    const ex: Example = {
      messages: [{ role: 'user', content: 'Hi' }, a('Yo', false), { role: 'user', content: 'More' }, a('Ok')],
    };
    expect(renderExample(ex, { kind: 'instruction' }, LLAMA)).toEqual([
      seg('### Instruction:\nHi\n\n### Response:\nYo</s>\n\n### Instruction:\nMore\n\n### Response:\n', false),
      seg('Ok</s>', true),
    ]);
  });

  it('custom template with {instruction} {input} {output}, a no-input variant and an explicit EOS', () => {
    const spec = {
      kind: 'custom' as const,
      template: '<human>: {instruction}\nContext: {input}\n<bot>: {output}</s>',
      templateNoInput: '<human>: {instruction}\n<bot>: {output}',
    };
    expect(renderExample({ messages: [user('Sum', 'a b'), a('ab')] }, spec, LLAMA)).toEqual([
      seg('<human>: Sum\nContext: a b\n<bot>: ', false),
      seg('ab</s>', true),
    ]);
    expect(renderExample({ messages: [user('Hi'), a('Hey'), user('Bye'), a('Cya')] }, spec, LLAMA)).toEqual([
      seg('<human>: Hi\n<bot>: ', false),
      seg('Hey</s>', true),
      seg('\n\n<human>: Bye\n<bot>: ', false),
      seg('Cya</s>', true),
    ]);
    // without an {input} slot the instruction placeholder gets the whole user message
    expect(
      joined(
        renderExample(
          { messages: [user('Sum', 'a b'), a('ab')] },
          { kind: 'custom', template: 'Q: {instruction}\nA: {output}\n' },
          LLAMA,
        ),
      ),
    ).toBe('Q: Sum\na b\nA: ab</s>\n');
    expect(() =>
      renderExample({ messages: [user('x'), a('y')] }, { kind: 'custom', template: 'no output slot' }, LLAMA),
    ).toThrow(TemplateError);
  });

  it('text and prompt/completion examples', () => {
    expect(renderExample({ text: 'Once upon a time' }, { kind: 'alpaca' }, LLAMA)).toEqual([
      seg('Once upon a time</s>', true),
    ]);
    expect(renderExample({ prompt: 'The sky is', completion: ' blue.' }, { kind: 'raw' }, LLAMA)).toEqual([
      seg('The sky is', false),
      seg(' blue.</s>', true),
    ]);
    expect(joined(renderExample({ prompt: 'P', completion: 'C' }, { kind: 'chatml' }, LLAMA))).toBe(
      '<|im_start|>user\nP<|im_end|>\n<|im_start|>assistant\nC<|im_end|></s>\n',
    );
    expect(() => renderExample({ messages: [user('x'), a('y')] }, { kind: 'raw' }, LLAMA)).toThrow(TemplateError);
  });

  it('generation prompt matches the untrained prefix', () => {
    const msgs: Message[] = [user('Translate to French.', 'Good morning')];
    expect(renderGenerationPrompt(msgs, { kind: 'alpaca' }, LLAMA)).toBe(
      'Below is an instruction that describes a task, paired with an input that provides further context. ' +
        'Write a response that appropriately completes the request.\n\n### Instruction:\nTranslate to French.\n\n### Input:\nGood morning\n\n### Response:',
    );
    expect(renderGenerationPrompt([{ role: 'user', content: 'Hi' }], { kind: 'chatml' }, LLAMA)).toBe(
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
  });
});

// Chat templates written for these tests in the styles of common models.
const CHATML_JINJA =
  "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
const LLAMA2_JINJA =
  "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] | trim + ' [/INST]' }}" +
  "{% elif message['role'] == 'assistant' %}{{ ' ' + message['content'] | trim + ' ' + eos_token }}{% endif %}{% endfor %}";
const ZEPHYR_JINJA =
  "{% for message in messages %}{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}";
const GEMMA_JINJA =
  "{{ bos_token }}{% for message in messages %}{% if message['role'] == 'assistant' %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}" +
  "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}" +
  "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}";
const STRICT_JINJA =
  "{% for m in messages %}{% if (m['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}" +
  "{{ m['role'] + ': ' + m['content'] + '\\n' }}{% endfor %}";

describe('model chat templates (Jinja)', () => {
  const two: Example = {
    messages: [{ role: 'user', content: 'Hi' }, a('Yo'), { role: 'user', content: 'More' }, a('Ok')],
  };

  it('renders like apply_chat_template', () => {
    expect(
      renderChatTemplate([{ role: 'user', content: 'Hi' }], {
        template: CHATML_JINJA,
        tokens: LLAMA,
        addGenerationPrompt: true,
      }),
    ).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
  });

  it('ChatML-style with EOS <|im_end|> (Qwen): every assistant turn trained through <|im_end|>', () => {
    const qwen = { ...LLAMA, bosToken: null, eosToken: '<|im_end|>' };
    expect(renderExample(two, { kind: 'chat_template', template: CHATML_JINJA }, qwen)).toEqual([
      seg('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n', false),
      seg('Yo<|im_end|>', true),
      seg('\n<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\n', false),
      seg('Ok<|im_end|>', true),
      seg('\n', false),
    ]);
  });

  it('ChatML-style with a different EOS: EOS appended after the end-of-turn marker', () => {
    expect(
      renderExample(
        { messages: [{ role: 'user', content: 'Hi' }, a('Yo')] },
        { kind: 'chat_template', template: CHATML_JINJA },
        LLAMA,
      ),
    ).toEqual([
      seg('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n', false),
      seg('Yo<|im_end|></s>', true),
      seg('\n', false),
    ]);
  });

  it('Llama-2 style (bos_token in template, eos after each answer): no extra EOS', () => {
    expect(renderExample(two, { kind: 'chat_template', template: LLAMA2_JINJA }, LLAMA)).toEqual([
      seg('<s>[INST] Hi [/INST] ', false),
      seg('Yo </s>', true),
      seg('[INST] More [/INST] ', false),
      seg('Ok </s>', true),
    ]);
  });

  it('Zephyr style (eos_token then newline)', () => {
    expect(
      renderExample(
        { messages: [{ role: 'system', content: 'S' }, { role: 'user', content: 'Hi' }, a('Yo')] },
        { kind: 'chat_template', template: ZEPHYR_JINJA },
        LLAMA,
      ),
    ).toEqual([
      seg('<|system|>\nS</s>\n<|user|>\nHi</s>\n<|assistant|>\n', false),
      seg('Yo</s>', true),
      seg('\n', false),
    ]);
  });

  it('Gemma style (end-of-turn marker that is not EOS; content trimmed by the template)', () => {
    const gemma = { ...LLAMA, bosToken: '<bos>', eosToken: '<eos>' };
    expect(
      renderExample(
        { messages: [{ role: 'user', content: 'Hi' }, a('  Yo  ')] },
        { kind: 'chat_template', template: GEMMA_JINJA },
        gemma,
      ),
    ).toEqual([
      seg('<bos><start_of_turn>user\nHi<end_of_turn>\n<start_of_turn>model\n', false),
      seg('Yo<end_of_turn><eos>', true),
      seg('\n', false),
    ]);
  });

  it('uses the tokenizer chat_template by default; template exceptions become TemplateError', () => {
    const tok = new ToyTokenizer({ chatTemplate: CHATML_JINJA, eosText: '<|im_end|>' });
    const tokens = templateTokensOf(tok);
    expect(tokens.eosToken).toBe('<|im_end|>');
    expect(joined(renderExample(two, { kind: 'chat_template' }, tokens))).toBe(
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\nOk<|im_end|>\n',
    );
    expect(() =>
      renderExample(
        { messages: [a('x'), { role: 'user', content: 'y' }, a('z')] },
        { kind: 'chat_template', template: STRICT_JINJA },
        LLAMA,
      ),
    ).toThrow(/Conversation roles must alternate/);
    expect(() => renderExample(two, { kind: 'chat_template' }, LLAMA)).toThrow(/no chat_template/);
  });
});

// Test templates of our own that use the Jinja features of the real Qwen3 and Gemma 3 chat templates (not copies of
// them): namespace() updated inside a reversed loop, loop.index0/first/last, `is string`, `is defined`, `is false`,
// `in`, startswith/endswith/split/strip/lstrip/rstrip, slicing, `| length`, `| trim`, whitespace control,
// raise_exception, add_generation_prompt and an apply_chat_template kwarg (enable_thinking).
const QWEN3_LIKE =
  '{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) -%}' +
  '{%- for message in messages[::-1] -%}{%- set index = (messages|length - 1) - loop.index0 -%}' +
  "{%- if ns.multi_step_tool and message.role == 'user' and message.content is string and not(message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) -%}" +
  '{%- set ns.multi_step_tool = false -%}{%- set ns.last_query_index = index -%}{%- endif -%}{%- endfor -%}' +
  '{%- for message in messages -%}' +
  "{%- if message.role == 'system' and not loop.first -%}{{ raise_exception('System message must be first') }}{%- endif -%}" +
  "{%- if message.role == 'user' or message.role == 'system' -%}{{- '<|im_start|>' + message.role + '\\n' + message.content + '<|im_end|>\\n' -}}" +
  "{%- elif message.role == 'assistant' -%}{%- set content = message.content -%}{%- set reasoning = '' -%}" +
  "{%- if '</think>' in content -%}{%- set reasoning = content.split('</think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') -%}{%- set content = content.split('</think>')[-1].lstrip('\\n') -%}{%- endif -%}" +
  '{%- if loop.index0 > ns.last_query_index and (loop.last or reasoning) -%}' +
  "{{- '<|im_start|>assistant\\n<think>\\n' + reasoning.strip('\\n') + '\\n</think>\\n\\n' + content.lstrip('\\n') -}}" +
  "{%- else -%}{{- '<|im_start|>assistant\\n' + content -}}{%- endif -%}{{- '<|im_end|>\\n' -}}" +
  "{%- else -%}{{ raise_exception('Unknown role: ' + message.role) }}{%- endif -%}{%- endfor -%}" +
  "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}" +
  "{%- if enable_thinking is defined and enable_thinking is false -%}{{- '<think>\\n\\n</think>\\n\\n' -}}{%- endif -%}{%- endif -%}";
const GEMMA3_LIKE =
  '{{ bos_token }}' +
  "{%- if messages[0]['role'] == 'system' -%}" +
  "{%- if messages[0]['content'] is string -%}{%- set first_user_prefix = messages[0]['content'] + '\\n\\n' -%}" +
  "{%- else -%}{%- set first_user_prefix = messages[0]['content'][0]['text'] + '\\n\\n' -%}{%- endif -%}" +
  '{%- set loop_messages = messages[1:] -%}' +
  "{%- else -%}{%- set first_user_prefix = '' -%}{%- set loop_messages = messages -%}{%- endif -%}" +
  '{%- for message in loop_messages -%}' +
  "{%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) -%}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{%- endif -%}" +
  "{%- if message['role'] == 'assistant' -%}{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}" +
  "{{ '<start_of_turn>' + role + '\\n' + (first_user_prefix if loop.first else '') }}" +
  "{%- if message['content'] is string -%}{{ message['content'] | trim }}" +
  "{%- elif message['content'] is iterable -%}{%- for item in message['content'] -%}{%- if item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}{%- endfor -%}" +
  "{%- else -%}{{ raise_exception('Invalid content type') }}{%- endif -%}" +
  "{{ '<end_of_turn>\\n' }}{%- endfor -%}" +
  "{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}";

describe('Jinja features of the Qwen3 and Gemma 3 chat templates', () => {
  const QWEN: TemplateTokens = { bosToken: null, eosToken: '<|im_end|>', chatTemplate: null, specialTokens: {} };
  const GEMMA: TemplateTokens = {
    bosToken: '<bos>',
    eosToken: '<eos>',
    chatTemplate: null,
    specialTokens: { bos_token: '<bos>', eos_token: '<eos>' },
  };
  const conv: Message[] = [
    { role: 'system', content: 'Be brief.' },
    { role: 'user', content: 'Hi' },
    a('Yo'),
    { role: 'user', content: 'More' },
    a('<think>\nsure\n</think>\n\nOk'),
  ];

  it('Qwen3-like: the last answer after the last query keeps its <think> block, earlier ones do not', () => {
    expect(renderChatTemplate(conv, { template: QWEN3_LIKE, tokens: QWEN })).toBe(
      '<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nYo<|im_end|>\n' +
        '<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\n<think>\nsure\n</think>\n\nOk<|im_end|>\n',
    );
    // a plain last answer gets the empty think block, untrained (as the prompt the model sees with thinking off)
    expect(
      renderExample(
        { messages: [...conv.slice(0, 4), a('Ok')] },
        { kind: 'chat_template', template: QWEN3_LIKE },
        QWEN,
      ),
    ).toEqual([
      seg('<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n', false),
      seg('Yo<|im_end|>', true),
      seg('\n<|im_start|>user\nMore<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n', false),
      seg('Ok<|im_end|>', true),
      seg('\n', false),
    ]);
    // the reasoning of the last answer is trained with it
    const segs = renderExample({ messages: conv }, { kind: 'chat_template', template: QWEN3_LIKE }, QWEN);
    expect(segs.filter((s) => s.train).map((s) => s.text)).toEqual([
      'Yo<|im_end|>',
      '<think>\nsure\n</think>\n\nOk<|im_end|>',
    ]);
  });

  it('Qwen3-like: enable_thinking false (chat_template_kwargs) adds the empty think block to the generation prompt', () => {
    const spec = { kind: 'chat_template' as const, template: QWEN3_LIKE };
    const prompt = [{ role: 'user' as const, content: 'Hi' }];
    expect(renderGenerationPrompt(prompt, spec, QWEN)).toBe('<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n');
    expect(renderGenerationPrompt(prompt, { ...spec, chat_template_kwargs: { enable_thinking: false } }, QWEN)).toBe(
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n',
    );
    expect(renderGenerationPrompt(prompt, { ...spec, chat_template_kwargs: { enable_thinking: true } }, QWEN)).toBe(
      '<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n',
    );
    expect(() => renderGenerationPrompt(prompt, { ...spec, chat_template_kwargs: { messages: [] } }, QWEN)).toThrow(
      /chat_template_kwargs: "messages" is set by the trainer/,
    );
    expect(() =>
      renderChatTemplate([{ role: 'user', content: 'Hi' }, conv[0]], { template: QWEN3_LIKE, tokens: QWEN }),
    ).toThrow(/System message must be first/);
  });

  it('Gemma3-like: system prompt folded into the first user turn, model role, trimmed content, alternation enforced', () => {
    expect(
      renderChatTemplate(conv.slice(0, 4), { template: GEMMA3_LIKE, tokens: GEMMA, addGenerationPrompt: true }),
    ).toBe(
      '<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\nYo<end_of_turn>\n' +
        '<start_of_turn>user\nMore<end_of_turn>\n<start_of_turn>model\n',
    );
    expect(
      renderExample(
        { messages: [...conv.slice(0, 4), a(' Ok ')] },
        { kind: 'chat_template', template: GEMMA3_LIKE },
        GEMMA,
      ),
    ).toEqual([
      seg('<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n<start_of_turn>model\n', false),
      seg('Yo<end_of_turn><eos>', true),
      seg('\n<start_of_turn>user\nMore<end_of_turn>\n<start_of_turn>model\n', false),
      seg('Ok<end_of_turn><eos>', true),
      seg('\n', false),
    ]);
    expect(() =>
      renderExample(
        { messages: [{ role: 'user', content: 'Hi' }, { role: 'user', content: 'Again' }, a('x')] },
        { kind: 'chat_template', template: GEMMA3_LIKE },
        GEMMA,
      ),
    ).toThrow(/Conversation roles must alternate/);
  });
});

describe('chat templates: what exported runs rely on', () => {
  const tokens: TemplateTokens = { ...LLAMA, eosToken: '\n' };
  const source =
    "{% for m in messages %}{% if m['role'] == 'user' %}{{ 'Q: ' ~ (m['instruction'] if m['instruction'] is defined else m['content']) ~ '|' ~ (m['input'] if m['input'] is defined else '-') ~ '\\n' }}" +
    "{% else %}{{ 'A: ' ~ m['content'] ~ eos_token }}{% endif %}{% endfor %}";
  it('a whitespace eos_token the template writes right after the content is trained once, not doubled', () => {
    const segs = renderExample(
      { messages: [user('Hi'), a('Hello')] },
      { kind: 'chat_template', template: source },
      tokens,
    );
    expect(segs).toEqual([seg('Q: Hi|\nA: ', false), seg('Hello\n', true)]);
  });
  it("an instruction dataset's instruction and input reach the Jinja template beside the content", () => {
    const segs = renderExample(
      { messages: [user('Add', '2 and 3'), a('5')] },
      { kind: 'chat_template', template: source },
      tokens,
    );
    expect(joined(segs)).toBe('Q: Add|2 and 3\nA: 5\n');
    const plain = renderExample(
      { messages: [{ role: 'user', content: 'Add' }, a('5')] },
      { kind: 'chat_template', template: source },
      tokens,
    );
    expect(joined(plain)).toBe('Q: Add|-\nA: 5\n');
  });
});
