/** 1. Model: a checkpoint from the catalog (Hub or its local mirror), or local files / a folder. */
import { useId, useState, type DragEvent } from 'react';
import { CATALOG, HF_HUB, downloadSize, hubModelSource, localMirror, saveBaseUrl, type CatalogModel } from './catalog';
import { ErrorBox, Empty, FileButton, ProgressBar, Section, bytesLabel } from './controls';
import { formatBytes, formatCount, formatMs } from './format';
import type { Loadable } from './loadable';
import {
  FROZEN_DTYPES,
  type FrozenDtype,
  type LoadProgress,
  type ModelAvailability,
  type ModelInfo,
  type ModelSource,
  type StorageFit,
} from '../worker/api';

/** Loading shows each file's progress; a failed load keeps the model loaded before it (the worker keeps it too). */
export type ModelState = Loadable<
  ModelInfo,
  { name: string; files: Record<string, LoadProgress>; previous: ModelInfo | null },
  { name: string; previous: ModelInfo | null }
>;

/** The model in use, whatever the last load did. */
export function currentModel(s: ModelState): ModelInfo | null {
  return s.kind === 'ready' ? s.value : s.kind === 'none' ? null : s.previous;
}

interface Props {
  state: ModelState;
  busy: boolean;
  baseUrl: string;
  onBaseUrl: (url: string) => void;
  availability: Record<string, ModelAvailability> | null;
  /** Per catalog model: at which frozen_dtype it fits the current backend (null while unknown). */
  fits: Record<string, StorageFit[]> | null;
  onLoad: (source: ModelSource, catalogId: string | null, opts: { frozenDtype: FrozenDtype }) => void;
  cache: { files: number; bytes: number } | null;
  onClearCache: () => void;
}

export function ModelSection({
  state,
  busy,
  baseUrl,
  onBaseUrl,
  availability,
  fits,
  onLoad,
  cache,
  onClearCache,
}: Props) {
  const [selected, setSelected] = useState(CATALOG.defaultModel);
  // null: the selected model's own choice (its preset, else the most precise storage that fits)
  const [dtypeChoice, setDtypeChoice] = useState<FrozenDtype | null>(null);
  const dtypeId = useId();
  const [dragging, setDragging] = useState(false);
  const baseId = useId();
  const model = CATALOG.models.find((m) => m.id === selected)!;
  const frozenDtype = dtypeChoice ?? defaultDtype(model, fits?.[model.id]);

  const loadLocal = (files: { path: string; file: File }[]) => {
    if (files.length === 0) return;
    const top = files[0].path.includes('/') ? files[0].path.split('/')[0] : undefined;
    onLoad({ kind: 'files', files, name: top }, null, { frozenDtype });
  };

  const onDrop = async (e: DragEvent) => {
    e.preventDefault();
    setDragging(false);
    loadLocal(await droppedFiles(e.dataTransfer));
  };

  const status =
    state.kind === 'ready' ? (
      <span className="badge ok">loaded: {state.value.name}</span>
    ) : state.kind === 'loading' ? (
      <span className="badge">loading…</span>
    ) : state.kind === 'error' ? (
      <span className="badge bad">failed</span>
    ) : null;

  return (
    <Section id="model" n={1} title="Model" status={status}>
      <p className="lead">
        Pick a small pretrained checkpoint. Its files are downloaded once and kept in this browser's cache.
      </p>
      <fieldset className="models" disabled={busy}>
        <legend>Checkpoint</legend>
        <div className="model-grid">
          {CATALOG.models.map((m) => (
            <ModelCard
              key={m.id}
              m={m}
              checked={m.id === selected}
              onSelect={() => {
                setSelected(m.id);
                setDtypeChoice(null);
              }}
              where={whereLabel(availability?.[m.id], baseUrl)}
              fits={fits?.[m.id]}
            />
          ))}
        </div>
      </fieldset>
      <div className="row wrap">
        <div className="field grow">
          <label htmlFor={baseId}>Hub base URL</label>
          <input
            id={baseId}
            type="url"
            value={baseUrl}
            disabled={busy}
            spellCheck={false}
            onChange={(e) => {
              onBaseUrl(e.target.value);
              saveBaseUrl(e.target.value);
            }}
            aria-describedby={baseId + '-hint'}
          />
          <small id={baseId + '-hint'} className="hint">
            Files are read from <code>{'{base}/{repo}/resolve/{revision}/{file}'}</code>.
          </small>
        </div>
        <div className="row buttons">
          <button
            type="button"
            className="link"
            disabled={busy}
            onClick={() => {
              onBaseUrl(localMirror());
              saveBaseUrl(localMirror());
            }}
          >
            Local mirror
          </button>
          <button
            type="button"
            className="link"
            disabled={busy}
            onClick={() => {
              onBaseUrl(HF_HUB);
              saveBaseUrl(HF_HUB);
            }}
          >
            huggingface.co
          </button>
        </div>
      </div>
      <div className="row">
        <button
          type="button"
          className="primary"
          disabled={busy}
          onClick={() => onLoad(hubModelSource(model, baseUrl.trim()), model.id, { frozenDtype })}
        >
          Load {model.name}
        </button>
        <div className="field inline">
          <label htmlFor={dtypeId}>Frozen weights</label>
          <select
            id={dtypeId}
            value={frozenDtype}
            disabled={busy}
            onChange={(e) => setDtypeChoice(e.target.value as FrozenDtype)}
            title="frozen_dtype: how the frozen base weights are kept in memory (LoRA stays float32)"
            data-testid="frozen-dtype"
          >
            {FROZEN_DTYPES.map((d) => (
              <option key={d} value={d}>
                {d}
              </option>
            ))}
          </select>
        </div>
        <span className="muted">
          {formatBytes(downloadSize(model))} download · {formatCount(model.params)} parameters
        </span>
      </div>

      <div
        className={'dropzone' + (dragging ? ' over' : '')}
        onDragOver={(e) => {
          e.preventDefault();
          setDragging(true);
        }}
        onDragLeave={() => setDragging(false)}
        onDrop={onDrop}
        data-testid="model-dropzone"
      >
        <p>
          Or use a model on this computer: a Hugging Face folder (config.json, model.safetensors, tokenizer.json) or a
          llama2.c <code>.bin</code> with its tokenizer. Drop it here, or choose:
        </p>
        <div className="row wrap">
          <FileButton label="Model files…" disabled={busy} onFiles={(files) => loadLocal(pickFiles(files))} />
          <FileButton
            label="Model folder…"
            directory
            disabled={busy}
            onFiles={(files) => loadLocal(pickFiles(files))}
          />
        </div>
      </div>

      <ModelStatus state={state} />
      <p className="muted small" data-testid="cache-info">
        Model cache: {cache ? `${cache.files} file${cache.files === 1 ? '' : 's'}, ${formatBytes(cache.bytes)}` : '…'}{' '}
        <button type="button" className="link" onClick={onClearCache} disabled={busy || !cache || cache.files === 0}>
          Clear cache
        </button>
      </p>
    </Section>
  );
}

/** The storage a catalog model starts with: its preset's, else the most precise that fits this backend. */
function defaultDtype(m: CatalogModel, fits: StorageFit[] | undefined): FrozenDtype {
  if (m.preset.frozen_dtype) return m.preset.frozen_dtype;
  return fits?.find((f) => f.fits)?.dtype ?? 'float32';
}

/** "fits here as float32, float16, int8", "fits here only as int8", or that it does not fit at all. */
function fitsLabel(fits: StorageFit[] | undefined): string {
  if (!fits) return 'checking whether it fits this device…';
  const ok = fits.filter((f) => f.fits).map((f) => f.dtype);
  if (ok.length === fits.length) return `fits this device at any frozen_dtype (${formatBytes(fits[0].backendBytes)})`;
  if (ok.length === 0)
    return `too big for this device's backend even as int8 (~${formatBytes(fits[fits.length - 1].backendBytes)})`;
  const f = fits.find((x) => x.fits)!;
  return `fits this device with frozen_dtype ${ok.join(' or ')} (~${formatBytes(f.backendBytes)} + ${formatBytes(f.outsideBytes)} of ${f.dtype} weights), not as float32`;
}

/** Where a catalog model would load from, said before the click. */
function whereLabel(a: ModelAvailability | undefined, baseUrl: string): { text: string; ok: boolean } {
  const mirror = baseUrl.replace(/\/+$/, '') === localMirror().replace(/\/+$/, '');
  const host = mirror ? 'the local mirror' : hostOf(baseUrl);
  if (!a || a.kind === 'unknown') return { text: 'checking where it loads from…', ok: true };
  if (a.kind === 'cached') return { text: 'available offline (in this browser)', ok: true };
  if (a.kind === 'server') {
    return mirror
      ? { text: `on the local mirror: ${formatBytes(a.bytes)}, no internet needed`, ok: true }
      : { text: `downloads ${formatBytes(a.bytes)} from ${host}`, ok: true };
  }
  return {
    text: mirror
      ? `not on the local mirror (${a.reason}): set the Hub base URL to huggingface.co to download it`
      : `not reachable on ${host}: ${a.reason}`,
    ok: false,
  };
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return url;
  }
}

function ModelCard({
  m,
  checked,
  onSelect,
  where,
  fits,
}: {
  m: CatalogModel;
  checked: boolean;
  onSelect: () => void;
  where: { text: string; ok: boolean };
  fits: StorageFit[] | undefined;
}) {
  const id = useId();
  return (
    <label className={'model-card' + (checked ? ' selected' : '')} htmlFor={id}>
      <input id={id} type="radio" name="model" value={m.id} checked={checked} onChange={onSelect} />
      <span className="model-name">{m.name}</span>
      <span className="model-facts">
        {formatCount(m.params)} params · {formatBytes(downloadSize(m))} · needs ~{formatBytes(m.memoryBytes)}
      </span>
      <span className={'model-where small' + (where.ok ? ' muted' : ' warn')} data-testid={`where-${m.id}`}>
        {where.text}
      </span>
      <span className="model-fits small muted" data-testid={`fits-${m.id}`}>
        {fitsLabel(fits)}
      </span>
      <span className="model-desc">{m.description}</span>
    </label>
  );
}

function ModelStatus({ state }: { state: ModelState }) {
  if (state.kind === 'none') return <Empty>No model loaded yet.</Empty>;
  if (state.kind === 'error') {
    return (
      <>
        <ErrorBox title={`Could not load ${state.name}`} message={state.message} testId="model-error" />
        {state.previous && <p className="muted">Still using {state.previous.name}.</p>}
      </>
    );
  }
  if (state.kind === 'loading') {
    const files = Object.values(state.files);
    return (
      <div role="status" aria-live="polite" data-testid="model-progress">
        <p>Loading {state.name}…</p>
        {files.length === 0 && <ProgressBar value={null} max={null} label="starting" />}
        {files.map((f) => (
          <div key={f.file} className="file-progress">
            <code>{f.file}</code>
            <ProgressBar
              value={f.loaded}
              max={f.total}
              label={
                f.phase === 'prepare'
                  ? 'preparing weights…'
                  : bytesLabel(f.loaded, f.total) + (f.cached ? ' · from cache' : '')
              }
            />
          </div>
        ))}
      </div>
    );
  }
  const i = state.value;
  return (
    <dl className="facts" data-testid="model-info">
      <div>
        <dt>Model</dt>
        <dd>{i.name}</dd>
      </div>
      <div>
        <dt>Architecture</dt>
        <dd>
          {i.architecture} ({i.family})
        </dd>
      </div>
      <div>
        <dt>Parameters</dt>
        <dd>{formatCount(i.params)}</dd>
      </div>
      <div>
        <dt>Layers · hidden</dt>
        <dd>
          {i.layers} · {i.hiddenSize}
        </dd>
      </div>
      <div>
        <dt>Vocabulary</dt>
        <dd>{i.vocabSize.toLocaleString('en-US')}</dd>
      </div>
      <div>
        <dt>Context</dt>
        <dd>{i.contextLength} tokens</dd>
      </div>
      <div>
        <dt>Chat template</dt>
        <dd>
          {i.hasChatTemplate ? 'yes' : 'no'} (data template by default: {i.defaultTemplate})
        </dd>
      </div>
      <div>
        <dt>Read</dt>
        <dd>
          {formatBytes(i.bytes)}
          {i.cachedBytes > 0 ? ` (${formatBytes(i.cachedBytes)} from cache)` : ''} in {formatMs(i.ms)}
        </dd>
      </div>
      <div>
        <dt>Backend</dt>
        <dd>{i.backend}</dd>
      </div>
      <div className="wide">
        <dt>Source</dt>
        <dd className="break">{i.source}</dd>
      </div>
    </dl>
  );
}

function pickFiles(list: File[]): { path: string; file: File }[] {
  return list.map((f) => ({ path: f.webkitRelativePath || f.name, file: f }));
}

/** Files from a drop, with folder structure (dropped folders are walked). */
async function droppedFiles(dt: DataTransfer): Promise<{ path: string; file: File }[]> {
  const entries = Array.from(dt.items ?? [])
    .map((it) => (it.kind === 'file' ? it.webkitGetAsEntry?.() : null))
    .filter((e): e is FileSystemEntry => !!e);
  if (entries.length === 0) return Array.from(dt.files, (f) => ({ path: f.name, file: f }));
  const out: { path: string; file: File }[] = [];
  const walk = async (entry: FileSystemEntry, prefix: string): Promise<void> => {
    if (entry.isFile) {
      const file = await new Promise<File>((res, rej) => (entry as FileSystemFileEntry).file(res, rej));
      out.push({ path: prefix + entry.name, file });
    } else if (entry.isDirectory) {
      const reader = (entry as FileSystemDirectoryEntry).createReader();
      for (;;) {
        const batch = await new Promise<FileSystemEntry[]>((res, rej) => reader.readEntries(res, rej));
        if (batch.length === 0) break;
        for (const child of batch) await walk(child, prefix + entry.name + '/');
      }
    }
  };
  for (const e of entries) await walk(e, '');
  return out;
}
