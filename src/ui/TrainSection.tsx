/** 4. Train: the backend (what was detected, why fallbacks happened), Start/Pause/Resume/Stop and progress. */
import { useState } from 'react';
import { Empty, ErrorBox, NumberField, ProgressBar, Section, SelectField } from './controls';
import { formatBytes, formatCount, formatMs, formatNum } from './format';
import { useThrottledVersion, type MetricsStore } from './metrics-store';
import type { Loadable } from './loadable';
import type { BackendChoice, BackendProbeReport, BackendStatus, TrainState } from '../worker/api';

/** The last checkpoint save of the run: stored, or why not. */
export type SaveView =
  | { ok: true; step: number; bytes: number; store: 'opfs' | 'indexeddb'; at: number }
  | { ok: false; step: number; message: string };

export interface TrainView {
  state: TrainState;
  /** Pause or Stop was pressed: the run ends after the step in flight. */
  pending?: 'pause' | 'stop';
  message?: string;
  totalSteps: number;
  startedAt: number | null;
}

interface Props {
  backend: BackendStatus | null;
  backendBusy: boolean;
  backendError: string | null;
  choice: BackendChoice;
  onChoice: (c: BackendChoice) => void;
  ready: boolean;
  notReadyReason: string;
  train: TrainView;
  store: MetricsStore;
  onStart: () => void;
  onPause: () => void;
  onResume: () => void;
  onStop: () => void;
  probe: Loadable<BackendProbeReport>;
  onProbe: () => void;
  save: SaveView | null;
  /** After a divergence with the last good state saved: resume it with this learning rate. */
  onResumeLower: ((lr: number) => void) | null;
  /** The learning rate that diverged. */
  learningRate: number;
}

const STATE_LABEL: Record<TrainView['state'], string> = {
  idle: 'Not started',
  running: 'Training',
  paused: 'Paused',
  stopped: 'Stopped',
  done: 'Finished',
  diverged: 'Diverged',
  error: 'Failed',
};

const CHOICES: { value: BackendChoice; label: string }[] = [
  { value: 'auto', label: 'Automatic (WebGPU → WebGL → WASM → CPU)' },
  { value: 'webgpu', label: 'WebGPU' },
  { value: 'webgl', label: 'WebGL' },
  { value: 'wasm', label: 'WebAssembly (WASM)' },
  { value: 'cpu', label: 'CPU (plain JavaScript)' },
];

export function TrainSection(p: Props) {
  const { train } = p;
  const running = train.state === 'running';
  const paused = train.state === 'paused';
  const active = running || paused;
  const status = running ? (
    <span className="badge">
      {train.pending === 'pause' ? 'pausing…' : train.pending === 'stop' ? 'stopping…' : 'training'}
    </span>
  ) : paused ? (
    <span className="badge">paused</span>
  ) : train.state === 'done' ? (
    <span className="badge ok">done</span>
  ) : train.state === 'stopped' ? (
    <span className="badge">stopped</span>
  ) : train.state === 'error' || train.state === 'diverged' ? (
    <span className="badge bad">{train.state}</span>
  ) : null;
  return (
    <Section id="train" n={4} title="Train" status={status}>
      <div className="row wrap">
        <SelectField
          label="Backend"
          value={p.choice}
          options={CHOICES}
          disabled={p.backendBusy || active}
          onChange={p.onChoice}
        />
        <BackendInfo backend={p.backend} busy={p.backendBusy} />
      </div>
      {p.backendError && <ErrorBox title="Backend" message={p.backendError} testId="backend-error" />}
      <div className="row wrap buttons" role="group" aria-label="Training controls">
        <button type="button" className="primary" onClick={p.onStart} disabled={!p.ready || active || p.backendBusy}>
          Start training
        </button>
        <button type="button" onClick={p.onPause} disabled={!running || !!train.pending}>
          Pause
        </button>
        <button type="button" onClick={p.onResume} disabled={!paused}>
          Resume
        </button>
        <button type="button" onClick={p.onStop} disabled={!active || train.pending === 'stop'}>
          Stop
        </button>
      </div>
      {!p.ready && !active && <Empty>{p.notReadyReason}</Empty>}
      <TrainProgress train={train} store={p.store} />
      {p.save &&
        (p.save.ok ? (
          <p className="muted small" data-testid="checkpoint-status" data-step={p.save.step}>
            Saved step {p.save.step} in this browser ({p.save.store === 'opfs' ? 'OPFS' : 'IndexedDB'},{' '}
            {formatBytes(p.save.bytes)}) at {new Date(p.save.at).toLocaleTimeString()}.
          </p>
        ) : (
          <ErrorBox
            title={`Checkpoint of step ${p.save.step} not saved`}
            message={p.save.message}
            testId="checkpoint-error"
          />
        ))}
      {(train.state === 'error' || train.state === 'diverged') && train.message && (
        <ErrorBox
          title={train.state === 'diverged' ? 'Training diverged' : 'Training stopped with an error'}
          message={train.message}
          testId="train-error"
        />
      )}
      {train.state === 'diverged' && p.onResumeLower && <ResumeLower lr={p.learningRate} onResume={p.onResumeLower} />}
      {train.state !== 'error' && train.state !== 'diverged' && train.message && (
        <p className="note" role="status" data-testid="train-message">
          {train.message}
        </p>
      )}
      <div className="probe">
        <div className="row wrap buttons">
          <button type="button" onClick={p.onProbe} disabled={p.probe.kind === 'loading' || active}>
            Backend check
          </button>
          <span className="muted small">
            Initialises every backend and checks each gradient the engine needs against the CPU (takes a minute).
          </span>
        </div>
        {p.probe.kind === 'loading' && <p role="status">Checking backends…</p>}
        {p.probe.kind === 'error' && (
          <p role="alert" data-testid="probe-error">
            Backend check failed: {p.probe.message}
          </p>
        )}
        {p.probe.kind === 'ready' && <ProbeTable report={p.probe.value} />}
      </div>
    </Section>
  );
}

/** Go on from the last good step with a lower learning rate (a tenth by default). */
function ResumeLower({ lr, onResume }: { lr: number; onResume: (lr: number) => void }) {
  const [value, setValue] = useState(Number((lr / 10).toPrecision(2)));
  return (
    <form
      className="row wrap"
      data-testid="resume-lower"
      onSubmit={(e) => {
        e.preventDefault();
        if (value > 0) onResume(value);
      }}
    >
      <NumberField label="New learning rate" value={value} step="any" onChange={setValue} hint={`was ${lr}`} />
      <button type="submit" className="primary" disabled={!(value > 0)}>
        Resume with this learning rate
      </button>
    </form>
  );
}

function BackendInfo({ backend, busy }: { backend: BackendStatus | null; busy: boolean }) {
  if (busy && !backend)
    return (
      <p role="status" className="backend-info">
        Detecting backends…
      </p>
    );
  if (!backend) return null;
  const gpu = backend.webgpu;
  return (
    <div className="backend-info" data-testid="backend-info" aria-live="polite">
      <p>
        Running on <strong data-testid="backend-name">{backend.backend}</strong>
        {backend.backend === 'wasm' &&
          backend.wasmSimd !== undefined &&
          ` (${backend.wasmRelaxedSimd ? 'relaxed SIMD' : backend.wasmSimd ? 'SIMD' : 'no SIMD'})`}
        {backend.wasmThreads !== undefined && (
          <span data-testid="wasm-threads" title={backend.wasmThreadsNote}>
            {` · ${backend.wasmThreads} thread${backend.wasmThreads === 1 ? '' : 's'}`}
          </span>
        )}
        {busy && ' · switching…'}
      </p>
      <p className="muted small">
        WebGPU adapter:{' '}
        {gpu.available
          ? `${gpu.info?.vendor || 'unknown vendor'} / ${gpu.info?.architecture || 'unknown architecture'}${gpu.info?.description ? ` (${gpu.info.description})` : ''}${gpu.isFallbackAdapter ? ', software fallback' : ''}`
          : `none (${gpu.reason})`}
        {' · '}cross-origin isolated: {backend.crossOriginIsolated ? 'yes' : 'no'}
      </p>
      {backend.fallbacks.length > 0 && (
        <ul className="fallbacks small">
          {backend.fallbacks.map((f) => (
            <li key={f.backend}>
              skipped {f.backend}: {f.reason}
            </li>
          ))}
        </ul>
      )}
    </div>
  );
}

function TrainProgress({ train, store }: { train: TrainView; store: MetricsStore }) {
  useThrottledVersion(store, 250);
  const m = store.last;
  // a run that ended before its first logged step (e.g. diverged at step 1) still says how it ended
  if (!m && (train.state === 'idle' || train.state === 'error')) return null;
  const total = m?.totalSteps ?? train.totalSteps;
  const step = m?.step ?? 0;
  const elapsed = m?.elapsedMs ?? 0;
  // ETA from the running median step time, never from the first step (it compiles the kernels).
  const median = store.medianStepMs();
  const running = train.state === 'running' && total > step;
  const eta = running && median ? median.ms * (total - step) : null;
  const label = m
    ? `step ${step} / ${total} · epoch ${formatNum(m.epoch, 3)} · ${formatCount(m.tokensSoFar)} trained tokens · loss ${formatNum(m.loss)} · ${formatMs(elapsed)} elapsed${eta != null ? ` · ETA ${formatMs(eta)}` : running ? ' · ETA after the next step' : ''}`
    : train.state === 'running'
      ? 'starting… (the first step compiles the kernels)'
      : `ended before its first step (${STATE_LABEL[train.state].toLowerCase()})`;
  return (
    <div className="train-progress" data-testid="train-progress" aria-live="off">
      <ProgressBar value={step} max={total || null} label={label} />
      <p
        className="muted small"
        data-testid="train-status"
        data-step={step}
        data-total={total}
        data-state={train.state}
      >
        {STATE_LABEL[train.state]}
        {m && ` · ${formatNum(m.tokens_per_sec, 3)} tokens/s · ${formatMs(m.ms_per_step)} per step`}
      </p>
    </div>
  );
}

/** What the failing cases mean for training: only those training uses matter. */
function unusedNote(report: BackendProbeReport): string {
  const used = report.backends.flatMap((b) => b.grads.filter((g) => g.status !== 'ok' && !g.unusedBecause));
  const unused = report.backends.flatMap((b) => b.grads.filter((g) => g.status !== 'ok' && g.unusedBecause));
  if (used.length === 0 && unused.length === 0) return 'Every gradient matches the CPU on every backend.';
  const tail = unused.length
    ? ` ${unused.length} failing case${unused.length === 1 ? ' is an op' : 's are ops'} that fine-tuning never differentiates (listed under “All failing cases”): they do not affect training.`
    : '';
  return used.length
    ? `${used.length} failing case${used.length === 1 ? '' : 's'} affect${used.length === 1 ? 's' : ''} training on ${[...new Set(report.backends.filter((b) => b.grads.some((g) => g.status !== 'ok' && !g.unusedBecause)).map((b) => b.backend))].join(', ')}: choose another backend there.${tail}`
    : `Every gradient training uses matches the CPU on every backend.${tail}`;
}

function ProbeTable({ report }: { report: BackendProbeReport }) {
  const gpu = report.webgpuAdapter;
  const [open, setOpen] = useState(false);
  return (
    <section data-testid="probe-result">
      <p>
        WebGPU adapter:{' '}
        {gpu.available ? `${gpu.info?.vendor ?? '?'} / ${gpu.info?.architecture ?? '?'}` : `none (${gpu.reason})`}
        {' · '}cross-origin isolated: {String(report.crossOriginIsolated)} · {formatMs(report.ms)}
      </p>
      <div className="table-scroll">
        <table>
          <thead>
            <tr>
              <th>backend</th>
              <th>status</th>
              <th>gradients ok</th>
              <th>failing, used by training</th>
              <th>failing, never used by training</th>
            </tr>
          </thead>
          <tbody>
            {report.backends.map((b) => {
              const failing = b.grads.filter((g) => g.status !== 'ok');
              const used = failing.filter((g) => !g.unusedBecause);
              const unused = failing.filter((g) => g.unusedBecause);
              const names = (gs: typeof failing) =>
                (open ? gs : gs.slice(0, 4)).map((g) => g.name).join(', ') + (!open && gs.length > 4 ? ', …' : '');
              return (
                <tr key={b.backend} data-testid={`probe-${b.backend}`}>
                  <td>{b.backend}</td>
                  <td>{b.available ? 'available' : `unavailable: ${b.reason}`}</td>
                  <td>{b.available ? `${b.grads.length - failing.length} / ${b.grads.length}` : '–'}</td>
                  <td className={used.length ? 'bad' : undefined}>{b.available ? names(used) || 'none' : '–'}</td>
                  <td className="muted">{names(unused)}</td>
                </tr>
              );
            })}
          </tbody>
        </table>
      </div>
      <p className="muted small" data-testid="probe-unused-note">
        {unusedNote(report)}
      </p>
      <button type="button" className="link" onClick={() => setOpen(!open)}>
        {open ? 'Fewer details' : 'All failing cases'}
      </button>
      {open && (
        <ul className="small muted">
          {[...new Map(report.backends.flatMap((b) => b.grads).map((g) => [g.name, g])).values()]
            .filter((g) => g.unusedBecause)
            .map((g) => (
              <li key={g.name}>
                {g.name}: never used by training ({g.unusedBecause}).
              </li>
            ))}
        </ul>
      )}
    </section>
  );
}
