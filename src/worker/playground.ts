/**
 * Trying the model: generation from an instruction with the adapter off ('base') or on ('tuned'), streaming tokens,
 * and evaluation of base against tuned on held-out examples.
 */
import { generate } from '../engine/generate';
import { defaultTemplate, type Message, type TemplateSpec } from '../data';
import { compareBaseTuned, evaluateGeneration, promptAndReference, renderTrainedPrompt } from '../train/evaluate';
import type { EvalReport, GenerateRequest, GenerateResult } from './api';
import { heldOut } from './dataset';
import { assertIdle, exclusive, requireData, requireModel, type WorkerState } from './state';

function userMessage(instruction: string, input?: string): Message {
  const inp = input?.trim() ?? '';
  return inp
    ? { role: 'user', content: `${instruction}\n\n${inp}`, instruction, input: inp }
    : { role: 'user', content: instruction };
}

/** The API's playground part. */
export function playgroundApi(s: WorkerState) {
  return {
    /** Generate from an instruction with the adapter off ('base') or on ('tuned'), streaming text to onToken. */
    generate(req: GenerateRequest, onToken?: (delta: string) => void): Promise<GenerateResult> {
      return exclusive(s, async () => {
        assertIdle(s, 'generate');
        const { model, tokenizer } = requireModel(s);
        if (!req.instruction.trim()) throw new Error('Write an instruction first.');
        const adapter = model.adapter;
        if (req.which === 'tuned' && !adapter) throw new Error('There is no adapter yet: train or import one.');
        // the prompt as training renders it (generation prompt of the template), tokenized as training does
        const template: TemplateSpec = req.template ?? defaultTemplate(tokenizer);
        const { ids, eosTokenIds, stopStrings } = renderTrainedPrompt(
          tokenizer,
          model.config,
          [userMessage(req.instruction, req.input)],
          template,
          req.eosToken,
        );
        if (ids.length >= model.config.max_position_embeddings) {
          throw new Error(
            `The prompt is ${ids.length} tokens, which leaves no room in this model's context of ${model.config.max_position_embeddings}.`,
          );
        }
        s.control.set('abortGeneration', false);
        const t0 = performance.now();
        if (req.which === 'base') model.adapter = null;
        try {
          const r = await generate(model, ids, {
            maxNewTokens: req.maxNewTokens,
            temperature: req.temperature,
            topK: req.topK,
            topP: req.topP,
            seed: req.seed,
            eosTokenIds,
            stopStrings,
            decode: (x) => tokenizer.decode(x, { skipSpecialTokens: true }),
            onToken: (_id, delta) => {
              s.beat();
              if (delta) void onToken?.(delta);
            },
            signal: s.generation,
          });
          return { text: r.text, tokens: r.ids.length, finishReason: r.finishReason, ms: performance.now() - t0 };
        } finally {
          model.adapter = adapter;
        }
      });
    },

    async stopGenerate(): Promise<void> {
      s.control.set('abortGeneration', true);
    },

    /** Exact match and ROUGE-L on the first n held-out examples: base (adapter off) and tuned (on). */
    evaluate(n: number, onProgress?: (done: number, total: number) => void): Promise<EvalReport> {
      return exclusive(s, async () => {
        assertIdle(s, 'evaluate');
        const { model, tokenizer } = requireModel(s);
        const d = requireData(s);
        const examples = heldOut(d);
        if (examples.length === 0)
          throw new Error(
            'The dataset has no held-out examples: set "Test examples" (or a validation split) in step 2.',
          );
        const count = Math.min(n, examples.length);
        s.control.set('abortGeneration', false);
        const both = !!model.adapter;
        let half = 0,
          last = 0;
        const opts = {
          template: d.prepared.template,
          eosToken: d.config.eos_token,
          maxExamples: count,
          maxNewTokens: 32,
          signal: s.generation,
          onProgress: (done: number) => {
            s.beat();
            if (both && done <= last) half = 1;
            last = done;
            void onProgress?.(half * count + done, both ? 2 * count : count);
          },
        };
        const r = both
          ? await compareBaseTuned(model, tokenizer, examples, opts)
          : { base: await evaluateGeneration(model, tokenizer, examples, opts), tuned: null };
        const instructions = examples.slice(0, count).map((ex) => {
          const user = promptAndReference(ex)
            ?.messages.filter((m) => m.role === 'user')
            .pop();
          return user?.instruction ?? user?.content ?? '';
        });
        return { base: r.base, tuned: r.tuned, instructions };
      });
    },
  };
}
