/**
 * A run's examples as the rows TRL and Axolotl read (the dataset formats of TRL's docs "Dataset formats and types"):
 * - conversations (and prompt/completion pairs under a prompt template) → conversational language modeling,
 *   `{"messages": [{"role", "content"}, …]}`; a user message from an instruction dataset keeps its `instruction`
 *   and `input` beside `content`, an untrained assistant turn carries `"weight": 0` (see src/train/export-jinja.ts);
 * - prompt/completion pairs under the `raw` template → standard prompt-completion, `{"prompt", "completion"}`;
 * - texts → standard language modeling, `{"text"}`.
 * Also Stanford Alpaca JSON (`instruction`, `input`, `output`, `system`, `history` as LLaMA-Factory reads it) for
 * instruction-template runs, and the rendered segments Axolotl's `input_output` type reads
 * (`{"segments": [{"text", "label"}]}`).
 *
 * Browser-safe: no node: imports.
 */
import {
  isChat,
  isPromptCompletion,
  isText,
  renderExample,
  type Example,
  type Message,
  type TemplateSpec,
  type TemplateTokens,
} from '../data';

/** The TRL dataset type a row is written as. */
export type RowKind = 'messages' | 'prompt_completion' | 'text';

export function rowKind(ex: Example, template: TemplateSpec): RowKind {
  if (isText(ex)) return 'text';
  if (isPromptCompletion(ex) && template.kind === 'raw') return 'prompt_completion';
  return 'messages';
}

function messageRow(m: Message): Record<string, unknown> {
  const row: Record<string, unknown> = { role: m.role, content: m.content };
  if (m.role === 'user' && m.instruction !== undefined) {
    row.instruction = m.instruction;
    row.input = m.input ?? '';
  }
  if (m.role === 'assistant' && m.train === false) row.weight = 0;
  return row;
}

/** One example as a row of its kind. */
export function exportRow(ex: Example, template: TemplateSpec): Record<string, unknown> {
  if (isText(ex)) return { text: ex.text };
  if (isPromptCompletion(ex)) {
    if (template.kind === 'raw') return { prompt: ex.prompt, completion: ex.completion };
    return {
      messages: [
        { role: 'user', content: ex.prompt },
        { role: 'assistant', content: ex.completion },
      ],
    };
  }
  return { messages: ex.messages.map(messageRow) };
}

export const toJsonl = (rows: unknown[]): string => rows.map((r) => JSON.stringify(r) + '\n').join('');

/**
 * An example as a Stanford Alpaca record, or null when it has no such form (a text, an untrained turn, several
 * user messages in one turn, a conversation that does not alternate user / assistant).
 */
export function alpacaRecord(ex: Example): Record<string, unknown> | null {
  if (isText(ex)) return null;
  const messages: Message[] = isChat(ex)
    ? ex.messages
    : [
        { role: 'user', content: ex.prompt },
        { role: 'assistant', content: ex.completion },
      ];
  let system: string | null = null;
  const turns: [Message, Message][] = [];
  let k = 0;
  if (messages[0]?.role === 'system') {
    system = messages[0].content;
    k = 1;
  }
  for (; k < messages.length; k += 2) {
    const u = messages[k];
    const a = messages[k + 1];
    if (u?.role !== 'user' || a?.role !== 'assistant' || a.train === false) return null;
    turns.push([u, a]);
  }
  if (turns.length === 0) return null;
  const [u, a] = turns[turns.length - 1];
  const rec: Record<string, unknown> = {
    instruction: u.instruction ?? u.content,
    input: u.instruction !== undefined ? (u.input ?? '') : '',
    output: a.content,
  };
  if (system !== null) rec.system = system;
  if (turns.length > 1) rec.history = turns.slice(0, -1).map(([q, r]) => [q.content, r.content]);
  return rec;
}

/** The rendered segments of an example (Axolotl's input_output type): exactly the text and mask the run trained. */
export function segmentsRow(ex: Example, template: TemplateSpec, tokens: TemplateTokens): Record<string, unknown> {
  return { segments: renderExample(ex, template, tokens).map((s) => ({ text: s.text, label: s.train })) };
}
