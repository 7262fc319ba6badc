/**
 * A run's metrics history as files: metrics.csv (one row per log or evaluation) and metrics.json, shaped like the
 * Hugging Face Trainer's trainer_state.json (global_step, max_steps, epoch, num_train_epochs, logging_steps,
 * eval_steps, train_batch_size, log_history), plus the run's status and configuration.
 *
 * No TensorFlow.js.
 */
import { stringifyFinite } from '../util/finite';
import type { FinetuneConfig } from './config';
import type { LogEntry } from './metrics';

/** The columns of metrics.csv, in order. */
export const METRICS_CSV_COLUMNS = [
  'step',
  'epoch',
  'loss',
  'accuracy',
  'learning_rate',
  'grad_norm',
  'tokens_per_sec',
  'trained_tokens',
  'ms_per_step',
  'num_tensors',
  'eval_loss',
  'eval_accuracy',
  'eval_tokens',
  'eval_runtime',
] as const;

/** The history as CSV, one row per log or evaluation (empty cells where a row has no value). */
export function metricsCsv(history: readonly LogEntry[]): string {
  const cols = METRICS_CSV_COLUMNS;
  const rows = history.map((h) =>
    cols
      .map((k) => {
        const v = (h as unknown as Record<string, unknown>)[k];
        return typeof v === 'number' ? String(v) : '';
      })
      .join(','),
  );
  return [cols.join(','), ...rows].join('\n') + '\n';
}

export interface TrainerStateInput {
  globalStep: number;
  maxSteps: number;
  stepsPerEpoch: number;
  status: string;
  config: FinetuneConfig;
  history: readonly LogEntry[];
}

/** A trainer_state.json-like record: steps, epochs, config and log_history. */
export function metricsJson(s: TrainerStateInput): string {
  return stringifyFinite(
    {
      global_step: s.globalStep,
      max_steps: s.maxSteps,
      epoch: s.globalStep / s.stepsPerEpoch,
      num_train_epochs: s.config.max_steps > 0 ? Math.ceil(s.maxSteps / s.stepsPerEpoch) : s.config.num_train_epochs,
      logging_steps: s.config.logging_steps,
      eval_steps: s.config.eval_steps ?? s.config.logging_steps,
      train_batch_size: s.config.per_device_train_batch_size,
      status: s.status,
      config: s.config,
      log_history: s.history,
    },
    2,
  );
}
