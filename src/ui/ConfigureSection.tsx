/** 3. Configure: LoRA and training settings, presets per model, and an estimate of size, memory and speed. */
import { SETTING_HELP } from './settings-help';
import { CheckField, Empty, ErrorBox, NumberField, Section, SelectField } from './controls';
import { formatBytes, formatCount, formatMs } from './format';
import type { Loadable } from './loadable';
import {
  defaultTargets,
  type Estimate,
  type FinetuneConfig,
  type ModelInfo,
  type RunOptions,
  type ScheduleName,
} from '../worker/api';

export interface Preset {
  id: string;
  label: string;
  settings: FinetuneConfig;
}

interface Props {
  model: ModelInfo | null;
  settings: FinetuneConfig;
  onSettings: (s: FinetuneConfig) => void;
  presets: Preset[];
  disabled: boolean;
  estimate: Loadable<Estimate>;
  /** The median step time of the last run (after its first, compiling step), and its backend. */
  measuredStep: { ms: number; backend: string } | null;
  onMeasure: () => void;
  canMeasure: boolean;
  runOptions: RunOptions;
  onRunOptions: (o: RunOptions) => void;
}

const SCHEDULES: { value: ScheduleName; label: string }[] = [
  { value: 'linear', label: 'linear decay' },
  { value: 'cosine', label: 'cosine' },
  { value: 'constant', label: 'constant' },
  { value: 'constant_with_warmup', label: 'constant after warmup' },
];

export function ConfigureSection({
  model,
  settings,
  onSettings,
  presets,
  disabled,
  estimate,
  measuredStep,
  onMeasure,
  canMeasure,
  runOptions,
  onRunOptions,
}: Props) {
  const s = settings;
  const set = <K extends keyof FinetuneConfig>(k: K, v: FinetuneConfig[K]) => onSettings({ ...s, [k]: v });
  const modules = model?.linearModules ?? [];
  const all = s.target_modules === 'all-linear';
  const targets: string[] =
    s.target_modules === 'all-linear' ? modules : (s.target_modules ?? defaultTargets({ family: model?.family }));
  const toggleTarget = (m: string, on: boolean) => {
    const next = on ? modules.filter((x) => x === m || targets.includes(x)) : targets.filter((t) => t !== m);
    set(
      'target_modules',
      next.length === modules.length && modules.length > 0 ? 'all-linear' : next.length ? next : null,
    );
  };
  const evalEvery = s.eval_strategy === 'steps' ? (s.eval_steps ?? s.logging_steps) : 0;

  return (
    <Section id="configure" n={3} title="Configure">
      {!model && <Empty>Load a model to see the layers LoRA can adapt.</Empty>}
      <div className="row wrap">
        <SelectField
          label="Preset"
          value={''}
          disabled={disabled || presets.length === 0}
          options={[{ value: '', label: 'Apply a preset…' }, ...presets.map((p) => ({ value: p.id, label: p.label }))]}
          onChange={(id) => {
            const p = presets.find((x) => x.id === id);
            if (p) onSettings(p.settings);
          }}
        />
      </div>
      <div className="config-grid">
        <fieldset disabled={disabled}>
          <legend>LoRA adapter</legend>
          <div className="grid-2">
            <NumberField
              label="Rank r"
              value={s.r}
              min={1}
              step={1}
              onChange={(v) => set('r', Math.max(1, Math.round(v)))}
              hint={SETTING_HELP.r}
            />
            <NumberField
              label="Alpha"
              value={s.lora_alpha}
              min={0}
              step="any"
              onChange={(v) => set('lora_alpha', v)}
              hint={SETTING_HELP.lora_alpha}
            />
            <NumberField
              label="Dropout"
              value={s.lora_dropout}
              min={0}
              max={0.99}
              step="any"
              onChange={(v) => set('lora_dropout', v)}
              hint={SETTING_HELP.lora_dropout}
            />
            <CheckField
              label="rsLoRA (scale alpha/√r)"
              checked={s.use_rslora}
              onChange={(v) => set('use_rslora', v)}
              hint={SETTING_HELP.use_rslora}
            />
          </div>
          <fieldset className="targets" disabled={disabled || modules.length === 0}>
            <legend>Target layers</legend>
            <CheckField
              label="all linear layers"
              checked={all}
              onChange={(v) => set('target_modules', v ? 'all-linear' : null)}
            />
            <div className="target-list">
              {modules.map((m) => (
                <CheckField
                  key={m}
                  label={m}
                  checked={all || targets.includes(m)}
                  onChange={(v) => toggleTarget(m, v)}
                />
              ))}
            </div>
          </fieldset>
        </fieldset>
        <fieldset disabled={disabled}>
          <legend>Training</legend>
          <div className="grid-3">
            <NumberField
              label="Learning rate"
              value={s.learning_rate}
              step="any"
              onChange={(v) => set('learning_rate', v)}
              hint={SETTING_HELP.learning_rate}
            />
            <NumberField
              label="Epochs"
              value={s.num_train_epochs}
              min={0}
              step="any"
              onChange={(v) => set('num_train_epochs', v)}
              hint={SETTING_HELP.num_train_epochs}
            />
            <NumberField
              label="Max steps"
              value={Math.max(0, s.max_steps)}
              min={0}
              step={1}
              hint={SETTING_HELP.max_steps}
              onChange={(v) => set('max_steps', Math.round(v) > 0 ? Math.round(v) : -1)}
            />
            <NumberField
              label="Batch size"
              value={s.per_device_train_batch_size}
              min={1}
              step={1}
              onChange={(v) => set('per_device_train_batch_size', Math.max(1, Math.round(v)))}
              hint={SETTING_HELP.per_device_train_batch_size}
            />
            <NumberField
              label="Gradient accumulation"
              value={s.gradient_accumulation_steps}
              min={1}
              step={1}
              onChange={(v) => set('gradient_accumulation_steps', Math.max(1, Math.round(v)))}
              hint={SETTING_HELP.gradient_accumulation_steps}
            />
            <NumberField
              label="Max length (tokens)"
              value={s.max_length}
              min={2}
              step={1}
              onChange={(v) => set('max_length', Math.max(2, Math.round(v)))}
              hint={`${SETTING_HELP.max_length}${model ? ` (context ${model.contextLength})` : ''}`}
            />
            <NumberField
              label="Warmup steps"
              value={s.warmup_steps}
              min={0}
              step={1}
              onChange={(v) => set('warmup_steps', Math.max(0, Math.round(v)))}
              hint={SETTING_HELP.warmup_steps}
            />
            <SelectField
              label="LR schedule"
              value={s.lr_scheduler_type}
              options={SCHEDULES}
              onChange={(v) => set('lr_scheduler_type', v)}
              hint={SETTING_HELP.lr_scheduler_type}
            />
            <NumberField
              label="Weight decay"
              value={s.weight_decay}
              min={0}
              step="any"
              onChange={(v) => set('weight_decay', v)}
              hint={SETTING_HELP.weight_decay}
            />
            <NumberField
              label="Gradient clipping"
              value={s.max_grad_norm}
              min={0}
              step="any"
              hint={SETTING_HELP.max_grad_norm}
              onChange={(v) => set('max_grad_norm', v)}
            />
            <NumberField
              label="Eval every (steps)"
              value={evalEvery}
              min={0}
              step={1}
              hint={SETTING_HELP.eval_steps}
              onChange={(v) =>
                onSettings(
                  Math.round(v) > 0
                    ? { ...s, eval_strategy: 'steps', eval_steps: Math.round(v) }
                    : { ...s, eval_strategy: 'no' },
                )
              }
            />
            <NumberField
              label="Seed"
              value={s.seed}
              step={1}
              onChange={(v) => set('seed', Math.round(v))}
              hint={SETTING_HELP.seed}
            />
            <NumberField
              label="Log every (steps)"
              value={s.logging_steps}
              min={1}
              step={1}
              onChange={(v) => set('logging_steps', Math.max(1, Math.round(v)))}
              hint={SETTING_HELP.logging_steps}
            />
            <NumberField
              label="Samples per evaluation"
              value={runOptions.samplePrompts}
              min={0}
              step={1}
              hint={SETTING_HELP.samplePrompts}
              onChange={(v) => onRunOptions({ ...runOptions, samplePrompts: Math.max(0, Math.round(v)) })}
            />
            <NumberField
              label="Sample length (tokens)"
              value={runOptions.sampleMaxNewTokens}
              min={1}
              step={1}
              onChange={(v) => onRunOptions({ ...runOptions, sampleMaxNewTokens: Math.max(1, Math.round(v)) })}
              hint={SETTING_HELP.sampleMaxNewTokens}
            />
            <NumberField
              label="Save every (steps)"
              value={runOptions.saveSteps ?? 0}
              min={0}
              step={1}
              hint={SETTING_HELP.save_steps}
              onChange={(v) => onRunOptions({ ...runOptions, saveSteps: Math.max(0, Math.round(v)) })}
            />
            <CheckField
              label="Gradient checkpointing (less memory, slower)"
              checked={s.gradient_checkpointing}
              onChange={(v) => set('gradient_checkpointing', v)}
              hint={SETTING_HELP.gradient_checkpointing}
            />
            <SelectField
              label="Frozen weights stored as"
              value={s.frozen_dtype}
              options={FROZEN_DTYPE_OPTIONS}
              onChange={(v) => set('frozen_dtype', v)}
              hint={SETTING_HELP.frozen_dtype}
            />
          </div>
        </fieldset>
      </div>
      <EstimatePanel estimate={estimate} measuredStep={measuredStep} onMeasure={onMeasure} canMeasure={canMeasure} />
    </Section>
  );
}

const FROZEN_DTYPE_OPTIONS: { value: FinetuneConfig['frozen_dtype']; label: string }[] = [
  { value: 'float32', label: 'float32 (exact, 4 bytes per weight)' },
  { value: 'float16', label: 'float16 (2 bytes per weight)' },
  { value: 'int8', label: 'int8 (1 byte per weight)' },
];

function EstimatePanel({
  estimate,
  measuredStep,
  onMeasure,
  canMeasure,
}: Pick<Props, 'estimate' | 'measuredStep' | 'onMeasure' | 'canMeasure'>) {
  return (
    <div className="estimate" data-testid="estimate" aria-live="polite">
      <h3>Estimate</h3>
      {estimate.kind === 'none' && <Empty>Load a model and a dataset to estimate the run.</Empty>}
      {estimate.kind === 'loading' && <p role="status">Estimating…</p>}
      {estimate.kind === 'error' && <ErrorBox title="Cannot estimate" message={estimate.message} />}
      {estimate.kind === 'ready' && <EstimateFacts e={estimate.value} measured={measuredStep} />}
      <button type="button" onClick={onMeasure} disabled={!canMeasure}>
        Measure step time
      </button>
    </div>
  );
}

function EstimateFacts({ e, measured }: { e: Estimate; measured: Props['measuredStep'] }) {
  const m = e.memory;
  const b = m.bytes;
  return (
    <>
      <dl className="facts">
        <div>
          <dt>Trainable parameters</dt>
          <dd data-testid="trainable-params">
            {formatCount(m.trainable_params)} ({m.trainable_percent.toFixed(2)}% of {formatCount(m.total_params)}) in{' '}
            {e.adaptedModules} layers
          </dd>
        </div>
        <div>
          <dt>Steps</dt>
          <dd data-testid="total-steps">
            {m.max_steps} ({m.steps_per_epoch} per epoch; largest batch {m.batch_size} × {m.seq_len} tokens)
          </dd>
        </div>
        <div>
          <dt>Tensors kept</dt>
          <dd>
            ~{formatBytes(b.total)}: weights {formatBytes(b.weights)}
            {b.compact_weights > 0 ? ` + ${formatBytes(b.compact_weights)} stored as ${m.frozen_dtype}` : ''}, adapter +
            gradients + optimizer {formatBytes(b.lora + b.gradients + b.optimizer)}, activations{' '}
            {formatBytes(b.activations + b.logits)}
          </dd>
        </div>
        <div>
          <dt>Peak memory on {e.backend}</dt>
          <dd data-testid="memory-fit" title="the tensors kept, scaled by the peaks measured on this backend">
            about {formatBytes(e.fit.neededBytes)}
            {e.fit.limitBytes !== null ? ` of ${formatBytes(e.fit.limitBytes)}` : ''}
            {e.fit.fits ? '' : ': does not fit'}
          </dd>
        </div>
        <div>
          <dt>Time per step</dt>
          <dd data-testid="ms-per-step">
            {e.msPerStep != null
              ? `${formatMs(e.msPerStep)} on ${e.backend} (whole run ~${formatMs(e.msPerStep * m.max_steps)})`
              : measured && measured.backend === e.backend
                ? `${formatMs(measured.ms)} on ${e.backend}, measured in the last run (whole run ~${formatMs(measured.ms * m.max_steps)})`
                : 'not measured yet'}
          </dd>
        </div>
      </dl>
      {!e.fit.fits && (
        <ErrorBox title="This run does not fit in memory" message={e.fit.advice} testId="memory-warning" />
      )}
      {e.warnings.map((w, i) => (
        <p key={i} className="note">
          {w}
        </p>
      ))}
    </>
  );
}
