/**
 * Learning-rate schedules with the formulas of Hugging Face transformers (optimization.py), as pure functions.
 *
 * Step convention (as torch's LambdaLR driven by the HF Trainer): `currentStep` is the number of optimizer
 * steps already taken, so optimizer step number s (1-based) runs with lr = baseLr · lambda(s − 1).
 * With warmup > 0 the very first optimizer step therefore uses lr = 0, exactly as in HF.
 */

export type ScheduleName = 'linear' | 'cosine' | 'constant' | 'constant_with_warmup';

export const SCHEDULE_NAMES: readonly ScheduleName[] = ['linear', 'cosine', 'constant', 'constant_with_warmup'];

export interface ScheduleConfig {
  name: ScheduleName;
  /** Warmup length in optimizer steps (ignored by 'constant', as HF's get_constant_schedule). */
  warmupSteps: number;
  /** num_training_steps (used by 'linear' and 'cosine'). */
  totalSteps: number;
  /** Cosine cycles; HF default 0.5 (one half-cosine from 1 down to 0). */
  numCycles?: number;
}

/** HF _get_constant_lambda. */
export function constantLambda(_currentStep: number): number {
  return 1;
}

/** HF _get_constant_schedule_with_warmup_lr_lambda. */
export function constantWithWarmupLambda(currentStep: number, warmupSteps: number): number {
  if (currentStep < warmupSteps) return currentStep / Math.max(1, warmupSteps);
  return 1;
}

/** HF _get_linear_schedule_with_warmup_lr_lambda. */
export function linearWithWarmupLambda(currentStep: number, warmupSteps: number, totalSteps: number): number {
  if (currentStep < warmupSteps) return currentStep / Math.max(1, warmupSteps);
  return Math.max(0, (totalSteps - currentStep) / Math.max(1, totalSteps - warmupSteps));
}

/** HF _get_cosine_schedule_with_warmup_lr_lambda (min_lr_rate 0). */
export function cosineWithWarmupLambda(
  currentStep: number,
  warmupSteps: number,
  totalSteps: number,
  numCycles = 0.5,
): number {
  if (currentStep < warmupSteps) return currentStep / Math.max(1, warmupSteps);
  const progress = (currentStep - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
  return Math.max(0, 0.5 * (1 + Math.cos(Math.PI * numCycles * 2 * progress)));
}

/** The lr multiplier at `currentStep` (0-based count of optimizer steps already taken). */
export function lrLambda(cfg: ScheduleConfig, currentStep: number): number {
  switch (cfg.name) {
    case 'constant':
      return constantLambda(currentStep);
    case 'constant_with_warmup':
      return constantWithWarmupLambda(currentStep, cfg.warmupSteps);
    case 'linear':
      return linearWithWarmupLambda(currentStep, cfg.warmupSteps, cfg.totalSteps);
    case 'cosine':
      return cosineWithWarmupLambda(currentStep, cfg.warmupSteps, cfg.totalSteps, cfg.numCycles ?? 0.5);
    default: {
      const bad: never = cfg.name;
      throw new Error(`unknown lr schedule ${JSON.stringify(bad)}; expected one of ${SCHEDULE_NAMES.join(', ')}`);
    }
  }
}

/** lrAt(currentStep) = baseLr · lambda(currentStep). */
export function makeSchedule(baseLr: number, cfg: ScheduleConfig): (currentStep: number) => number {
  if (!SCHEDULE_NAMES.includes(cfg.name)) {
    throw new Error(`unknown lr schedule ${JSON.stringify(cfg.name)}; expected one of ${SCHEDULE_NAMES.join(', ')}`);
  }
  return (currentStep: number) => baseLr * lrLambda(cfg, currentStep);
}

/**
 * HF TrainingArguments.get_warmup_steps: warmupSteps if > 0, else ceil(totalSteps · warmupRatio).
 */
export function warmupStepsFor(totalSteps: number, opts: { warmupSteps?: number; warmupRatio?: number }): number {
  const ws = opts.warmupSteps ?? 0;
  const ratio = opts.warmupRatio ?? 0;
  if (!(Number.isInteger(ws) && ws >= 0)) throw new Error(`warmupSteps must be a non-negative integer, got ${ws}`);
  if (!(ratio >= 0 && ratio <= 1)) throw new Error(`warmupRatio must be in [0, 1], got ${ratio}`);
  return ws > 0 ? ws : Math.ceil(totalSteps * ratio);
}
