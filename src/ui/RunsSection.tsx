/**
 * Saved runs: every run is stored in this browser as it trains (OPFS, else IndexedDB). Listed here with their last
 * checkpoint and backend; unfinished ones resume exactly where they were saved, finished ones open (their adapter on
 * the model, no training) for Compare and Export. Rename, delete, export as one file, import.
 */
import { useId, useState } from 'react';
import { Empty, ErrorBox, FileButton } from './controls';
import { formatBytes, formatNum } from './format';
import type { Loadable, StatusMessage } from './loadable';
import type { RunsReport, StoredRun } from '../worker/api';

export type RunsState = Loadable<RunsReport>;

interface Props {
  state: RunsState;
  /** The run the engine is training (or has paused). */
  activeRunId: string | null;
  /** A run (or other work) holds the engine: resume waits. */
  busy: boolean;
  /** Highlighted (e.g. the run a crash interrupted). */
  highlight: string | null;
  message: StatusMessage | null;
  onResume: (run: StoredRun) => void;
  /** A finished run: its model, dataset and adapter, for Compare and Export. */
  onOpen: (run: StoredRun) => void;
  onRename: (run: StoredRun, name: string) => void;
  onDelete: (run: StoredRun) => void;
  onExport: (run: StoredRun) => void;
  onImport: (file: File) => void;
}

const STATUS: Record<string, string> = { idle: 'not started', stopped: 'unfinished', completed: 'finished' };

export function RunsSection(p: Props) {
  const report = p.state.kind === 'ready' ? p.state.value : null;
  const runs = report?.runs ?? [];
  return (
    <section id="runs" aria-labelledby="runs-h" className="card" data-testid="runs">
      <header className="card-head">
        <h2 id="runs-h">Saved runs</h2>
        {report?.store && (
          <div className="card-status muted small" data-testid="runs-store">
            in this browser ({report.store === 'opfs' ? 'origin private file system' : 'IndexedDB'})
            {report.usage && ` · ${formatBytes(report.usage.used)} of ${formatBytes(report.usage.quota)} used`}
          </div>
        )}
      </header>
      {p.state.kind === 'loading' && <p role="status">Reading saved runs…</p>}
      {p.state.kind === 'error' && <ErrorBox title="Saved runs" message={p.state.message} />}
      {report && !report.store && (
        <ErrorBox
          title="Runs cannot be saved in this browser"
          message={report.error ?? 'no storage'}
          testId="runs-unavailable"
        />
      )}
      {report?.store && runs.length === 0 && (
        <Empty>
          No saved runs yet. A run is saved here when it starts, every “Save every” steps, and when it pauses, stops or
          ends; after a reload or a crash it can be resumed.
        </Empty>
      )}
      {runs.length > 0 && (
        <ul className="runs" aria-label="Saved runs">
          {runs.map((r) => (
            <RunRow key={r.id} run={r} {...p} />
          ))}
        </ul>
      )}
      <div className="row wrap buttons">
        <FileButton
          label="Import a run file…"
          multiple={false}
          accept=".safetensors"
          disabled={!report?.store}
          onFiles={(f) => p.onImport(f[0])}
        />
        <span className="muted small">
          A <code>.webtune.safetensors</code> file from “Export” (here or in another browser).
        </span>
      </div>
      {p.message &&
        (p.message.kind === 'error' ? (
          <ErrorBox title="Saved runs" message={p.message.text} testId="runs-error" />
        ) : (
          <p className="note" role="status" data-testid="runs-status">
            {p.message.text}
          </p>
        ))}
    </section>
  );
}

function RunRow({
  run,
  activeRunId,
  busy,
  highlight,
  onResume,
  onOpen,
  onRename,
  onDelete,
  onExport,
}: { run: StoredRun } & Props) {
  const [editing, setEditing] = useState<string | null>(null);
  const [confirm, setConfirm] = useState(false);
  const id = useId();
  const l = run.latest;
  const active = run.id === activeRunId;
  const status = !l ? 'no checkpoint' : (STATUS[l.status] ?? l.status);
  const finished = l?.status === 'completed';
  return (
    <li
      className={'run' + (highlight === run.id ? ' highlight' : '')}
      data-testid="run"
      data-run-id={run.id}
      data-step={l?.step ?? ''}
      data-status={l?.status ?? ''}
      aria-describedby={id}
    >
      <div className="run-head">
        {editing === null ? (
          <strong className="run-name">{run.name}</strong>
        ) : (
          <form
            className="row"
            onSubmit={(e) => {
              e.preventDefault();
              if (editing.trim()) onRename(run, editing.trim());
              setEditing(null);
            }}
          >
            <label className="visually-hidden" htmlFor={id + '-name'}>
              New name
            </label>
            <input
              id={id + '-name'}
              value={editing}
              autoFocus
              maxLength={200}
              onChange={(e) => setEditing(e.target.value)}
              onKeyDown={(e) => {
                if (e.key === 'Escape') setEditing(null);
              }}
            />
            <button type="submit">Save name</button>
            <button type="button" onClick={() => setEditing(null)}>
              Cancel
            </button>
          </form>
        )}
        <span className={'badge' + (l?.status === 'completed' ? ' ok' : '')}>
          {active ? 'in this session' : status}
        </span>
      </div>
      <p id={id} className="muted small run-facts" data-testid="run-facts">
        {l
          ? `step ${l.step} / ${l.max_steps} · epoch ${formatNum(l.epoch, 3)}${l.loss !== null ? ` · loss ${formatNum(l.loss)}` : ''} · saved ${new Date(l.saved).toLocaleString()} · ${formatBytes(l.bytes)}`
          : 'nothing saved yet'}
        {run.modelName && !run.name.includes(run.modelName) && ` · ${run.modelName}`}
        {run.dataName && !run.name.includes(run.dataName) && ` on ${run.dataName}`}
        {run.backend && ` · ${run.backend}`}
      </p>
      {(run.unfinished || finished) && run.needs && (
        <p className="small note">
          To {run.unfinished ? 'resume' : 'open'}, load {run.needs} first (checked against the run).
        </p>
      )}
      <div className="row wrap buttons">
        {run.unfinished && !active && (
          <button type="button" className="primary" disabled={busy} onClick={() => onResume(run)}>
            Resume
          </button>
        )}
        {finished && (
          <button
            type="button"
            className="primary"
            disabled={busy}
            onClick={() => onOpen(run)}
            title="Load its model and dataset with its adapter (no training), for Compare and Export"
          >
            Open
          </button>
        )}
        <button type="button" disabled={editing !== null} onClick={() => setEditing(run.name)}>
          Rename
        </button>
        <button type="button" disabled={!l} onClick={() => onExport(run)}>
          Export
        </button>
        {!confirm ? (
          <button type="button" disabled={active && busy} onClick={() => setConfirm(true)}>
            Delete
          </button>
        ) : (
          <span className="row" role="group" aria-label={`Delete ${run.name}?`}>
            <button
              type="button"
              className="danger"
              autoFocus
              onClick={() => {
                setConfirm(false);
                onDelete(run);
              }}
            >
              Delete for good
            </button>
            <button type="button" onClick={() => setConfirm(false)}>
              Keep
            </button>
          </span>
        )}
      </div>
    </li>
  );
}
