/** 2. Data: a dataset file (or pasted text, or the demo), parsed and tokenized in the worker, with a report. */
import { useId, useState } from 'react';
import { CheckField, ErrorBox, Empty, FileButton, NumberField, ProgressBar, Section, SelectField } from './controls';
import { formatNum, formatPct } from './format';
import type {
  DatasetInfo,
  DatasetInput,
  DatasetReport,
  FinetuneConfig,
  RowError,
  TemplateName,
  TemplateSpec,
} from '../worker/api';
import type { Loadable } from './loadable';

/** Loading and a failed load name the files being read. */
export type DatasetState = Loadable<DatasetInfo, { name: string }, { name: string }>;

/** The built-in demo (public/datasets/): training file and held-out test file. */
export const DEMO_DATASET = [
  { name: 'tiny-tasks.jsonl', url: `${import.meta.env.BASE_URL}datasets/tiny-tasks.jsonl`, role: 'train' },
  { name: 'tiny-tasks-eval.jsonl', url: `${import.meta.env.BASE_URL}datasets/tiny-tasks-eval.jsonl`, role: 'test' },
] as const;

const TEMPLATES: { value: TemplateName | 'auto'; label: string }[] = [
  { value: 'auto', label: "Automatic (model's chat template, else Alpaca)" },
  { value: 'alpaca', label: 'Stanford Alpaca' },
  { value: 'chatml', label: 'ChatML' },
  { value: 'instruction', label: 'Instruction / Response' },
  { value: 'chat_template', label: "Model's chat template" },
  { value: 'raw', label: 'Raw text (no template)' },
];

interface Props {
  state: DatasetState;
  modelReady: boolean;
  busy: boolean;
  /** The data options are part of the run's settings (template, splits, eos_token, train_on_inputs). */
  settings: FinetuneConfig;
  onSettings: (s: FinetuneConfig) => void;
  onLoad: (files: DatasetInput['files'], name: string) => void;
  onDemo: () => void;
}

const EOS_CHOICES = [
  { value: 'eos', label: "the tokenizer's EOS token" },
  { value: 'newline', label: 'a newline' },
];

export function DataSection({ state, modelReady, busy, settings, onSettings, onLoad, onDemo }: Props) {
  const [pasted, setPasted] = useState('');
  const [pastedName, setPastedName] = useState('pasted.jsonl');
  const pasteId = useId();
  const nameId = useId();
  const disabled = busy || !modelReady;

  const pick = async (files: File[]) => {
    const read = await Promise.all(
      files.map(async (f) => ({ name: f.name, data: new Uint8Array(await f.arrayBuffer()), role: 'train' as const })),
    );
    onLoad(read, files.map((f) => f.name).join(', '));
  };

  const status =
    state.kind === 'ready' ? (
      <span className="badge ok">{state.value.report.splits.train.examples} training examples</span>
    ) : state.kind === 'loading' ? (
      <span className="badge">reading…</span>
    ) : state.kind === 'error' ? (
      <span className="badge bad">error</span>
    ) : null;

  return (
    <Section id="data" n={2} title="Data" status={status}>
      <p className="lead">
        Instruction data as JSON, JSONL, CSV/TSV or text: Alpaca (instruction/input/output), Dolly, prompt/completion,
        chat messages, ShareGPT, question/answer or plain text. Everything stays in this browser.
      </p>
      {!modelReady && <Empty>Load a model first: its tokenizer is needed to read the data.</Empty>}
      <div className="grid-4">
        <SelectField
          label="Prompt template"
          value={settings.template?.kind ?? 'auto'}
          options={TEMPLATES}
          disabled={disabled}
          onChange={(v) => onSettings({ ...settings, template: v === 'auto' ? null : ({ kind: v } as TemplateSpec) })}
        />
        <NumberField
          label="Validation split"
          value={settings.val_size}
          min={0}
          step="any"
          disabled={disabled}
          hint="fraction (e.g. 0.1) or a number of examples"
          onChange={(v) => onSettings({ ...settings, val_size: Math.max(0, v) })}
        />
        <NumberField
          label="Test examples"
          value={settings.test_size}
          min={0}
          step="any"
          disabled={disabled}
          hint="held out for exact match / ROUGE-L (a test file replaces it)"
          onChange={(v) => onSettings({ ...settings, test_size: Math.max(0, v) })}
        />
        <SelectField
          label="Responses end with"
          value={settings.eos_token === '\n' ? 'newline' : 'eos'}
          options={EOS_CHOICES}
          disabled={disabled}
          hint="a newline for models that never learnt EOS (llama2.c)"
          onChange={(v) => onSettings({ ...settings, eos_token: v === 'newline' ? '\n' : null })}
        />
      </div>
      <CheckField
        label="Train on prompts too (not only responses)"
        checked={settings.train_on_inputs}
        disabled={disabled}
        onChange={(v) => onSettings({ ...settings, train_on_inputs: v })}
      />
      <div className="row wrap">
        <button type="button" className="primary" disabled={disabled} onClick={onDemo}>
          Use the demo dataset
        </button>
        <FileButton
          label="Dataset file…"
          accept=".json,.jsonl,.csv,.tsv,.txt,.md"
          disabled={disabled}
          onFiles={(files) => void pick(files)}
        />
      </div>
      <details className="paste">
        <summary>Paste data</summary>
        <div className="field">
          <label htmlFor={pasteId}>Dataset text</label>
          <textarea
            id={pasteId}
            rows={6}
            value={pasted}
            onChange={(e) => setPasted(e.target.value)}
            spellCheck={false}
            placeholder={'{"instruction": "Say hi", "output": "Hi!"}\n{"instruction": "…", "output": "…"}'}
            disabled={disabled}
          />
        </div>
        <div className="row wrap">
          <div className="field">
            <label htmlFor={nameId}>File name (its extension picks the format)</label>
            <input
              id={nameId}
              type="text"
              value={pastedName}
              onChange={(e) => setPastedName(e.target.value)}
              disabled={disabled}
            />
          </div>
          <button
            type="button"
            disabled={disabled || pasted.trim() === ''}
            onClick={() =>
              onLoad(
                [{ name: pastedName || 'pasted.jsonl', data: pasted, role: 'train' }],
                pastedName || 'pasted.jsonl',
              )
            }
          >
            Use pasted data
          </button>
        </div>
      </details>
      <DataStatus state={state} />
    </Section>
  );
}

function DataStatus({ state }: { state: DatasetState }) {
  if (state.kind === 'none') return null;
  if (state.kind === 'loading')
    return (
      <div role="status">
        <ProgressBar value={null} max={null} label={`Reading ${state.name}…`} />
      </div>
    );
  if (state.kind === 'error')
    return <ErrorBox title={`Could not use ${state.name}`} message={state.message} testId="data-error" />;
  return <Report info={state.value} />;
}

function Report({ info }: { info: DatasetInfo }) {
  const r = info.report;
  const s = r.splits;
  return (
    <div className="report" data-testid="data-report">
      <h3 className="table-title">Files</h3>
      <div className="table-scroll">
        <table className="compact">
          <thead>
            <tr>
              <th>file</th>
              <th>format</th>
              <th>rows</th>
              <th>examples</th>
              <th>errors</th>
            </tr>
          </thead>
          <tbody>
            {r.files.map((f) => (
              <tr key={f.file}>
                <td className="break">{f.file}</td>
                <td>{f.format}</td>
                <td>{f.rows}</td>
                <td>{f.examples}</td>
                <td>{f.errors}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      <h3 className="table-title">Splits</h3>
      <p className="muted small">
        Template {r.template}, max length {r.maxLength} tokens; the test split is never trained on.
      </p>
      <div className="table-scroll">
        <table className="compact">
          <thead>
            <tr>
              <th>split</th>
              <th>examples</th>
              <th>tokens</th>
              <th>trained tokens</th>
              <th>truncated</th>
              <th>median length</th>
            </tr>
          </thead>
          <tbody>
            {(['train', 'validation', 'evaluation'] as const).map((k) => (
              <tr key={k}>
                <td>{k === 'evaluation' ? 'test' : k}</td>
                <td>{s[k].examples}</td>
                <td>{s[k].tokens}</td>
                <td>{s[k].trainedTokens}</td>
                <td>{s[k].truncated}</td>
                <td>{s[k].lengths.median}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </div>
      {info.warnings.map((w, i) => (
        <p key={i} className="note">
          {w}
        </p>
      ))}
      <p className="muted">
        {formatPct(r.truncatedShare)} of examples cut to the max length
        {r.dropped.count > 0 && (
          <>
            {' '}
            · {r.dropped.count} dropped (
            {Object.entries(r.dropped.byReason)
              .map(([k, v]) => `${v} ${k}`)
              .join(', ')}
            )
          </>
        )}
      </p>
      <Histogram report={r} />
      {r.errors.length > 0 && <RowErrors errors={r.errors} />}
      {r.sample && <TokenView sample={r.sample} />}
    </div>
  );
}

function Histogram({ report }: { report: DatasetReport }) {
  const bins = report.lengthHistogram;
  const max = Math.max(1, ...bins.map((b) => b.count));
  return (
    <figure className="histogram">
      <figcaption>Token lengths before truncation (the bar past {report.maxLength} is cut)</figcaption>
      <div
        className="bars"
        role="img"
        aria-label={`Histogram of ${bins.reduce((a, b) => a + b.count, 0)} example lengths`}
      >
        {bins.map((b) => (
          <div
            key={b.from}
            className={'bar' + (b.from >= report.maxLength ? ' over' : '')}
            title={`${b.from}–${b.to - 1} tokens: ${b.count}`}
            style={{ height: `${(100 * b.count) / max}%` }}
          />
        ))}
      </div>
      <div className="bars-axis">
        <span>0</span>
        <span>{formatNum(bins[bins.length - 1]?.to ?? 0)} tokens</span>
      </div>
    </figure>
  );
}

function RowErrors({ errors }: { errors: RowError[] }) {
  return (
    <details className="row-errors" open>
      <summary>
        {errors.length} row{errors.length === 1 ? '' : 's'} skipped
      </summary>
      <ul>
        {errors.slice(0, 20).map((e, i) => (
          <li key={i}>
            <code>
              {e.file}:{e.line}
              {e.column ? `:${e.column}` : ''}
            </code>
            {e.field ? ` ${e.field}` : ''}: {e.message}
          </li>
        ))}
      </ul>
    </details>
  );
}

function TokenView({ sample }: { sample: NonNullable<DatasetReport['sample']> }) {
  return (
    <figure className="tokens">
      <figcaption>
        First training example as the model sees it: <span className="tok trained">trained</span> tokens carry the loss,{' '}
        <span className="tok">prompt</span> tokens do not.
      </figcaption>
      <div className="token-view" data-testid="token-view">
        {sample.slice(0, 400).map((t, i) => (
          <span key={i} className={'tok' + (t.trained ? ' trained' : '')} title={`id ${t.id}: ${t.piece}`}>
            {visible(t.piece)}
          </span>
        ))}
        {sample.length > 400 && <span className="muted"> … {sample.length - 400} more</span>}
      </div>
    </figure>
  );
}

/**
 * Token pieces with their whitespace made visible (SentencePiece ▁, GPT-2 Ġ/Ċ are already visible), and
 * SentencePiece byte-fallback tokens of printable ASCII shown as their character (<0x23> as #, <0x0A> as ↵); other
 * bytes (parts of a UTF-8 sequence) keep their <0xNN> name.
 */
function visible(piece: string): string {
  const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(piece);
  const code = byte ? parseInt(byte[1], 16) : -1;
  const text = code === 0x0a || (code >= 0x20 && code < 0x7f) ? String.fromCharCode(code) : piece;
  return text.replace(/\n/g, '↵').replace(/ /g, '·');
}
