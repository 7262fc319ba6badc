/**
 * 7. Export, one zip each: the adapter in PEFT's format, the merged model, the metrics, the run for TRL / Axolotl;
 * import a PEFT adapter (or a TRL / Axolotl output folder).
 */
import { Empty, ErrorBox, FileButton, Section } from './controls';
import { formatCount } from './format';
import type { StatusMessage } from './loadable';
import type { AdapterInfo } from '../worker/api';

interface Props {
  adapter: AdapterInfo | null;
  modelReady: boolean;
  busy: boolean;
  /** A run (running or paused) owns the adapter: importing waits until it is stopped. */
  runActive: boolean;
  hasMetrics: boolean;
  onExportAdapter: () => void;
  onExportMerged: () => void;
  onExportMetrics: () => void;
  /** A dataset is loaded (the run can be exported for TRL / Axolotl). */
  hasData: boolean;
  onExportRun: () => void;
  onImport: (files: File[]) => void;
  message: StatusMessage | null;
}

export function ExportSection(p: Props) {
  return (
    <Section id="export" n={7} title="Export">
      {p.adapter ? (
        <p data-testid="adapter-info">
          Adapter: r = {p.adapter.config.r}, alpha = {p.adapter.config.lora_alpha}, {p.adapter.modules} layers,{' '}
          {formatCount(p.adapter.trainableParams)} parameters ({p.adapter.origin}).
        </p>
      ) : (
        <Empty>Train (or import) an adapter to export it.</Empty>
      )}
      <div className="export-grid">
        <div>
          <h3>LoRA adapter (PEFT)</h3>
          <p className="muted small">
            A zip of <code>adapter_config.json</code>, <code>adapter_model.safetensors</code> and a README; loads with{' '}
            <code>PeftModel.from_pretrained</code>.
          </p>
          <button type="button" className="primary" disabled={!p.adapter || p.busy} onClick={p.onExportAdapter}>
            Download adapter
          </button>
        </div>
        <div>
          <h3>Merged model</h3>
          <p className="muted small">
            Base weights with the adapter folded in, a zip of a transformers folder: <code>config.json</code>,{' '}
            <code>model.safetensors</code>, <code>tokenizer.json</code>; loads with{' '}
            <code>AutoModelForCausalLM.from_pretrained</code>.
          </p>
          <button type="button" disabled={!p.adapter || p.busy} onClick={p.onExportMerged}>
            Download merged model
          </button>
        </div>
        <div>
          <h3>Metrics</h3>
          <p className="muted small">
            Every logged step and evaluation of the last run: a zip of <code>metrics.json</code> and{' '}
            <code>metrics.csv</code>.
          </p>
          <button type="button" disabled={!p.hasMetrics || p.busy} onClick={p.onExportMetrics}>
            Download metrics
          </button>
        </div>
        <div>
          <h3>Run for GPUs (TRL / Axolotl)</h3>
          <p className="muted small">
            The same run on a bigger model or many GPUs: a zip of the data as trained, the template, a{' '}
            <code>train_trl.py</code> for <code>accelerate launch</code> and an <code>axolotl.yaml</code>. Import the
            adapter they write below.
          </p>
          <button type="button" disabled={!p.modelReady || !p.hasData || p.busy} onClick={p.onExportRun}>
            Download run
          </button>
        </div>
        <div>
          <h3>Import an adapter</h3>
          <p className="muted small">
            Choose both PEFT files (same base model), or every file of a TRL / Axolotl output folder (the final adapter
            or the latest <code>checkpoint-N</code> is taken){p.runActive ? '; stop training first' : ''}.
          </p>
          <FileButton
            label="Adapter files…"
            accept=".json,.safetensors,.bin"
            disabled={!p.modelReady || p.busy || p.runActive}
            onFiles={p.onImport}
          />{' '}
          <FileButton
            label="Adapter folder…"
            directory
            disabled={!p.modelReady || p.busy || p.runActive}
            onFiles={p.onImport}
          />
        </div>
      </div>
      {p.message?.kind === 'error' && (
        <ErrorBox title="Export / import" message={p.message.text} testId="export-error" />
      )}
      {p.message?.kind === 'ok' && (
        <p className="note" role="status" data-testid="export-status">
          {p.message.text}
        </p>
      )}
    </Section>
  );
}
