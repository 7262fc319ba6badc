/** 6. Compare: the same instruction to the base model and the tuned one, side by side; EM / ROUGE-L before and after. */
import { useId, useState } from 'react';
import { Empty, ErrorBox, NumberField, Section } from './controls';
import { formatMs } from './format';
import type { Loadable } from './loadable';
import type { EvalReport, SamplingOptions } from '../worker/api';

export interface Output {
  text: string;
  state: 'idle' | 'running' | 'done' | 'error';
  info?: string;
}

interface Props {
  modelReady: boolean;
  hasAdapter: boolean;
  /** Training is running: the playground waits (pause to use it). */
  locked: boolean;
  suggestions: { instruction: string; input: string; reference: string }[];
  sampling: SamplingOptions;
  onSampling: (s: SamplingOptions) => void;
  outputs: { base: Output; tuned: Output };
  generating: boolean;
  onGenerate: (instruction: string, input: string) => void;
  onStopGenerate: () => void;
  /** Evaluation: loading counts the examples done. */
  evalState: Loadable<EvalReport, { done: number; total: number }>;
  evalCount: number;
  onEvalCount: (n: number) => void;
  onEvaluate: () => void;
  canEvaluate: boolean;
}

export function CompareSection(p: Props) {
  // Until the user types or picks a prompt, a tuned model's playground holds the first held-out prompt.
  const [typed, setTyped] = useState<{ instruction: string; input: string } | null>(null);
  const first = p.suggestions[0] ?? null;
  const prefill = p.hasAdapter && first ? first : null;
  const { instruction, input } = typed ?? prefill ?? { instruction: '', input: '' };
  const setInstruction = (v: string) => setTyped({ instruction: v, input });
  const setInput = (v: string) => setTyped({ instruction, input: v });
  const instrId = useId();
  const inputId = useId();
  const s = p.sampling;
  const set = <K extends keyof SamplingOptions>(k: K, v: SamplingOptions[K]) => p.onSampling({ ...s, [k]: v });
  const disabled = !p.modelReady || p.locked;
  return (
    <Section id="compare" n={6} title="Compare">
      {!p.modelReady && <Empty>Load a model to try it.</Empty>}
      {p.locked && <p className="note">Pause or stop training to use the playground.</p>}
      {prefill && !p.locked && (
        <div className="try" data-testid="see-difference">
          <p>
            <strong>See the difference.</strong> A held-out prompt the model never trained on: “{prefill.instruction}
            {prefill.input ? ` ${prefill.input}` : ''}” (expected answer: “{prefill.reference}”). Ask both models:
          </p>
          <button
            type="button"
            className="primary"
            disabled={disabled || p.generating}
            onClick={() => {
              setTyped({ instruction: prefill.instruction, input: prefill.input });
              p.onGenerate(prefill.instruction, prefill.input);
            }}
          >
            See the difference
          </button>
        </div>
      )}
      <div className="playground">
        <div className="field">
          <label htmlFor={instrId}>Instruction</label>
          <textarea
            id={instrId}
            rows={3}
            value={instruction}
            onChange={(e) => setInstruction(e.target.value)}
            disabled={disabled}
            placeholder="e.g. Say hello to Lom."
          />
        </div>
        <div className="field">
          <label htmlFor={inputId}>Input (optional)</label>
          <textarea
            id={inputId}
            rows={2}
            value={input}
            onChange={(e) => setInput(e.target.value)}
            disabled={disabled}
          />
        </div>
        {p.suggestions.length > 0 && (
          <div className="suggestions">
            <span className="muted small">Held-out prompts:</span>
            {p.suggestions.slice(0, 4).map((x, i) => (
              <button
                key={i}
                type="button"
                className="chip"
                disabled={disabled}
                onClick={() => setTyped({ instruction: x.instruction, input: x.input })}
              >
                {x.instruction.length > 48 ? x.instruction.slice(0, 47) + '…' : x.instruction}
              </button>
            ))}
          </div>
        )}
        <fieldset className="sampling" disabled={disabled}>
          <legend>Sampling</legend>
          <div className="grid-5">
            <NumberField
              label="Max new tokens"
              value={s.maxNewTokens}
              min={1}
              step={1}
              onChange={(v) => set('maxNewTokens', Math.max(1, Math.round(v)))}
            />
            <NumberField
              label="Temperature"
              value={s.temperature}
              min={0}
              step="any"
              hint="0 = greedy"
              onChange={(v) => set('temperature', Math.max(0, v))}
            />
            <NumberField
              label="Top-k"
              value={s.topK}
              min={0}
              step={1}
              hint="0 = off"
              onChange={(v) => set('topK', Math.max(0, Math.round(v)))}
            />
            <NumberField
              label="Top-p"
              value={s.topP}
              min={0}
              max={1}
              step="any"
              onChange={(v) => set('topP', Math.min(1, Math.max(0, v)))}
            />
            <NumberField label="Seed" value={s.seed} step={1} onChange={(v) => set('seed', Math.round(v))} />
          </div>
        </fieldset>
        <div className="row buttons">
          <button
            type="button"
            className="primary"
            disabled={disabled || p.generating || instruction.trim() === ''}
            onClick={() => p.onGenerate(instruction, input)}
          >
            Generate
          </button>
          <button type="button" disabled={!p.generating} onClick={p.onStopGenerate}>
            Stop
          </button>
        </div>
        <div className="side-by-side">
          <OutputBox title="Base model (adapter off)" out={p.outputs.base} testId="out-base" />
          <OutputBox
            title={p.hasAdapter ? 'Tuned model (adapter on)' : 'Tuned model (no adapter yet)'}
            out={p.outputs.tuned}
            testId="out-tuned"
          />
        </div>
      </div>
      <EvalPanel {...p} />
    </Section>
  );
}

function OutputBox({ title, out, testId }: { title: string; out: Output; testId: string }) {
  return (
    <div className="output" data-testid={testId} data-state={out.state}>
      <h3>{title}</h3>
      <div className="output-text" aria-live="polite" aria-busy={out.state === 'running'}>
        {out.text ||
          (out.state === 'running' ? <span className="muted">…</span> : <span className="muted">Nothing yet.</span>)}
        {out.state === 'running' && (
          <span className="cursor" aria-hidden="true">
            ▍
          </span>
        )}
      </div>
      {out.info && <p className={out.state === 'error' ? 'error-text small' : 'muted small'}>{out.info}</p>}
    </div>
  );
}

function EvalPanel(p: Props) {
  const e = p.evalState;
  return (
    <div className="eval" data-testid="eval">
      <h3>Evaluation: exact match and ROUGE-L, before and after</h3>
      <div className="row wrap">
        <NumberField
          label="Examples"
          value={p.evalCount}
          min={1}
          step={1}
          disabled={!p.canEvaluate}
          onChange={(v) => p.onEvalCount(Math.max(1, Math.round(v)))}
          hint="held-out examples (greedy decoding)"
        />
        <button type="button" onClick={p.onEvaluate} disabled={!p.canEvaluate || e.kind === 'loading'}>
          Evaluate base vs tuned
        </button>
      </div>
      {!p.canEvaluate && e.kind === 'none' && (
        <Empty>
          Needs a dataset with held-out examples (a test file or split, or a validation split), and no training running.
        </Empty>
      )}
      {e.kind === 'loading' && (
        <p role="status">
          Generating… {e.done} / {e.total}
        </p>
      )}
      {e.kind === 'error' && <ErrorBox title="Evaluation failed" message={e.message} />}
      {e.kind === 'ready' && <EvalTable report={e.value} />}
    </div>
  );
}

function EvalTable({ report }: { report: EvalReport }) {
  const { base, tuned } = report;
  const pct = (x: number) => `${x.toFixed(1)}%`;
  const delta = (a: number, b: number) => {
    const d = b - a;
    return (
      <span className={d > 0 ? 'up' : d < 0 ? 'down' : ''}>
        {d >= 0 ? '+' : ''}
        {d.toFixed(1)}
      </span>
    );
  };
  const row = (label: string, k: 'exact_match' | 'rougeL') => (
    <tr>
      <td>{label}</td>
      <td>{pct(base[k])}</td>
      <td>{tuned ? pct(tuned[k]) : '–'}</td>
      <td>{tuned ? delta(base[k], tuned[k]) : '–'}</td>
    </tr>
  );
  return (
    <>
      <table className="compact" data-testid="eval-table">
        <caption>
          {base.count} held-out examples{base.skipped ? ` (${base.skipped} skipped: prompt too long)` : ''}
          {tuned ? '' : ' · no adapter yet: base model only'}
        </caption>
        <thead>
          <tr>
            <th>metric</th>
            <th>base</th>
            <th>tuned</th>
            <th>change (points)</th>
          </tr>
        </thead>
        <tbody>
          {row('exact match', 'exact_match')}
          {row('ROUGE-L F1', 'rougeL')}
        </tbody>
      </table>
      <details>
        <summary>Per example</summary>
        <div className="table-scroll">
          <table className="compact examples">
            <thead>
              <tr>
                <th>instruction</th>
                <th>reference</th>
                <th>base</th>
                <th>tuned</th>
              </tr>
            </thead>
            <tbody>
              {base.examples.map((b, i) => {
                const t = tuned?.examples[i];
                return (
                  <tr key={i}>
                    <td>{report.instructions[i] ?? b.prompt}</td>
                    <td>{b.reference}</td>
                    <td className={b.exact_match ? 'up' : ''}>{b.prediction}</td>
                    <td className={t?.exact_match ? 'up' : ''}>{t ? t.prediction : '–'}</td>
                  </tr>
                );
              })}
            </tbody>
          </table>
        </div>
      </details>
    </>
  );
}

export function outputInfo(tokens: number, ms: number, finish: string): string {
  return `${tokens} tokens in ${formatMs(ms)} (${finish})`;
}
