/** Small accessible form controls and status boxes shared by the sections. */
import { createContext, useContext, useEffect, useId, useRef, useState, type ReactNode } from 'react';
import { formatBytes } from './format';
import { NextStep } from './guide';

/**
 * Where number fields report that what they hold is not a valid value (label → message, null when valid), so the
 * page can refuse to start with it instead of silently using the last valid number.
 */
export const FieldErrorsContext = createContext<(label: string, error: string | null) => void>(() => undefined);

/** Why `text` is not a valid value for the field, or null. */
export function numberFieldError(
  text: string,
  { min, max, step }: { min?: number; max?: number; step?: number | 'any' },
): string | null {
  const t = text.trim();
  if (t === '') return 'enter a number';
  const v = Number(t);
  if (!Number.isFinite(v)) return `"${t}" is not a number`;
  if (min !== undefined && v < min) return `must be at least ${min}`;
  if (max !== undefined && v > max) return `must be at most ${max}`;
  if (step === 1 && !Number.isInteger(v)) return 'must be a whole number';
  return null;
}

export function NumberField(props: {
  label: string;
  value: number;
  onChange: (v: number) => void;
  min?: number;
  max?: number;
  step?: number | 'any';
  hint?: string;
  disabled?: boolean;
  name?: string;
}) {
  const id = useId();
  // Keep what the user types (e.g. "1e-" on the way to "1e-4"); only valid numbers are passed up. An invalid text
  // stays in the field with its reason (never silently replaced by the last valid value) and is reported upwards.
  const [text, setText] = useState<string | null>(null);
  const error = text === null ? null : numberFieldError(text, props);
  const report = useContext(FieldErrorsContext);
  const { label } = props;
  useEffect(() => {
    report(label, error);
    return () => report(label, null);
  }, [report, label, error]);
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      <input
        id={id}
        name={props.name}
        type="text"
        inputMode="decimal"
        value={text ?? String(props.value)}
        aria-invalid={error !== null || undefined}
        aria-describedby={error !== null ? id + '-error' : props.hint ? id + '-hint' : undefined}
        disabled={props.disabled}
        onChange={(e) => {
          const t = e.target.value;
          setText(t);
          if (numberFieldError(t, props) === null) props.onChange(Number(t));
        }}
        onBlur={() => {
          if (error === null) setText(null);
        }}
      />
      {error !== null && (
        <small id={id + '-error'} className="field-error" role="alert">
          {props.label}: {error}
        </small>
      )}
      {props.hint && (
        <small id={id + '-hint'} className="hint">
          {props.hint}
        </small>
      )}
    </div>
  );
}

export function SelectField<T extends string>(props: {
  label: string;
  value: T;
  options: { value: T; label: string }[];
  onChange: (v: T) => void;
  hint?: string;
  disabled?: boolean;
}) {
  const id = useId();
  return (
    <div className="field">
      <label htmlFor={id}>{props.label}</label>
      <select
        id={id}
        value={props.value}
        disabled={props.disabled}
        onChange={(e) => props.onChange(e.target.value as T)}
        aria-describedby={props.hint ? id + '-hint' : undefined}
      >
        {props.options.map((o) => (
          <option key={o.value} value={o.value}>
            {o.label}
          </option>
        ))}
      </select>
      {props.hint && (
        <small id={id + '-hint'} className="hint">
          {props.hint}
        </small>
      )}
    </div>
  );
}

export function CheckField(props: {
  label: string;
  checked: boolean;
  onChange: (v: boolean) => void;
  disabled?: boolean;
  hint?: string;
}) {
  const id = useId();
  return (
    <div className="field check">
      <input
        id={id}
        type="checkbox"
        checked={props.checked}
        disabled={props.disabled}
        onChange={(e) => props.onChange(e.target.checked)}
      />
      <label htmlFor={id}>{props.label}</label>
      {props.hint && <small className="hint">{props.hint}</small>}
    </div>
  );
}

export function ProgressBar(props: { value: number | null; max: number | null; label: string; testId?: string }) {
  const { value, max } = props;
  const determinate = value != null && max != null && max > 0;
  return (
    <div className="progress" data-testid={props.testId}>
      <progress
        value={determinate ? value! : undefined}
        max={determinate ? max! : undefined}
        aria-label={props.label}
      />
      <span className="progress-text">{props.label}</span>
    </div>
  );
}

export function bytesLabel(loaded: number, total: number | null): string {
  return total
    ? `${formatBytes(loaded)} / ${formatBytes(total)} (${Math.floor((100 * loaded) / total)}%)`
    : formatBytes(loaded);
}

export function ErrorBox({ title, message, testId }: { title: string; message: string; testId?: string }) {
  return (
    <div className="error" role="alert" data-testid={testId}>
      <strong>{title}</strong>
      <pre>{message}</pre>
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

export function Section(props: { id: string; n: number; title: string; children: ReactNode; status?: ReactNode }) {
  return (
    <section id={props.id} aria-labelledby={props.id + '-h'} className="card">
      <header className="card-head">
        <h2 id={props.id + '-h'}>
          <span className="step-n" aria-hidden="true">
            {props.n}
          </span>
          {props.title}
        </h2>
        {props.status && <div className="card-status">{props.status}</div>}
      </header>
      {props.children}
      <NextStep id={props.id} />
    </section>
  );
}

/** Saves bytes as a file (a download the browser shows). */
export function saveFile(name: string, bytes: Uint8Array | string, mime: string): void {
  const blob = new Blob([typeof bytes === 'string' ? bytes : (bytes as Uint8Array<ArrayBuffer>)], { type: mime });
  const url = URL.createObjectURL(blob);
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.rel = 'noopener';
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 30_000);
}

/**
 * A file picker that looks like a button: a real <input type=file> (keyboard-focusable, Space/Enter opens it)
 * followed by its label. `directory` picks a whole folder (webkitdirectory).
 */
export function FileButton(props: {
  label: string;
  onFiles: (files: File[]) => void;
  disabled?: boolean;
  multiple?: boolean;
  accept?: string;
  directory?: boolean;
}) {
  const id = useId();
  const ref = useRef<HTMLInputElement>(null);
  useEffect(() => {
    // React has no prop for these non-standard attributes.
    if (props.directory) {
      ref.current?.setAttribute('webkitdirectory', '');
      ref.current?.setAttribute('directory', '');
    }
  }, [props.directory]);
  return (
    <span className="file-pick">
      <input
        id={id}
        ref={ref}
        className="visually-hidden"
        type="file"
        multiple={props.multiple ?? true}
        accept={props.accept}
        disabled={props.disabled}
        onChange={(e) => {
          const files = Array.from(e.target.files ?? []);
          e.target.value = '';
          if (files.length) props.onFiles(files);
        }}
      />
      <label className={'file-button' + (props.disabled ? ' disabled' : '')} htmlFor={id}>
        {props.label}
      </label>
    </span>
  );
}
