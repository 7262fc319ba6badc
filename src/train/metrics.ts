/**
 * Training metrics with the names of the Hugging Face Trainer's log_history (trainer_state.json): per optimizer step
 * (StepMetrics, what the Trainer reads back), aggregated over a logging window of logging_steps steps (MetricsWindow:
 * loss is the mean of the steps' losses as HF logs it; learning rate and grad_norm those of the last step), the
 * validation record (eval_loss, eval_runtime, …) and the log entries of a session's history.
 *
 * No TensorFlow.js.
 */
import type { GenerationEvalExample } from './evaluate';

/** Metrics of one optimizer step. */
export interface StepMetrics {
  /** Optimizer step number (1-based). */
  step: number;
  /** Token-weighted mean CE over the step's micro-batches. */
  loss: number;
  /** correct / tokens (0 when no tokens). */
  accuracy: number;
  correct: number;
  /** Trained tokens in the step. */
  tokens: number;
  /** Learning rate applied in this step. */
  learning_rate: number;
  /** Global L2 norm of the gradient before clipping. */
  gradNorm: number;
  /** Wall time of this step: in trainSteps(), of the loop iteration that fetched its batches, launched it and
   *  waited for the previous step's readback (the steady-state throughput); in step(), launch → readback. */
  msPerStep: number;
  tokensPerSec: number;
  /**
   * tf.memory().numTensors right after the step was launched (its temporaries freed), not counting the
   * trainer's own small readback tensors of steps not yet read back — so it is constant unless something leaks.
   */
  numTensors: number;
}

/** One optimizer step in a logging window: its metrics and its input (non-padding) tokens. Checkpoints keep the
 *  window not yet logged as a list of these. */
export interface StepRecord extends StepMetrics {
  inputTokens: number;
}

/** Aggregate over the `steps` optimizer steps ending at `step` (HF logging_steps). */
export interface WindowMetrics extends StepMetrics {
  /** Steps aggregated: loss is their mean (as HF logs), accuracy Σcorrect/Σtokens, tokens Σ, msPerStep mean,
   *  learning_rate / gradNorm / numTensors those of the last step; tokensPerSec counts trained tokens. */
  steps: number;
  /** Σ input (non-padding) tokens of the window's steps. */
  inputTokens: number;
  /** Input tokens per second over the window (0 without time). */
  inputTokensPerSec: number;
}

/** The steps of one logging window, aggregated when the window is logged. */
export class MetricsWindow {
  private items: StepRecord[] = [];

  add(m: StepMetrics, inputTokens = 0): void {
    this.items.push({ ...m, inputTokens });
  }

  get size(): number {
    return this.items.length;
  }

  /** The steps not yet logged (copies), e.g. for a checkpoint. */
  records(): StepRecord[] {
    return this.items.map((r) => ({ ...r }));
  }

  /** Replace the window's content (e.g. from a checkpoint). */
  restore(records: readonly StepRecord[]): void {
    this.items = records.map((r) => ({ ...r }));
  }

  /** The aggregate of the steps added since the last take() (null when none), and an empty window. */
  take(): WindowMetrics | null {
    const it = this.items;
    if (it.length === 0) return null;
    this.items = [];
    const last = it[it.length - 1];
    let loss = 0,
      correct = 0,
      tokens = 0,
      ms = 0,
      input = 0;
    for (const m of it) {
      loss += m.loss;
      correct += m.correct;
      tokens += m.tokens;
      ms += m.msPerStep;
      input += m.inputTokens;
    }
    return {
      step: last.step,
      steps: it.length,
      loss: loss / it.length,
      accuracy: tokens > 0 ? correct / tokens : 0,
      correct,
      tokens,
      learning_rate: last.learning_rate,
      gradNorm: last.gradNorm,
      msPerStep: ms / it.length,
      tokensPerSec: tokens / (ms / 1000),
      numTensors: last.numTensors,
      inputTokens: input,
      inputTokensPerSec: ms > 0 ? input / (ms / 1000) : 0,
    };
  }
}

/** A logging window as the session logs it (HF log_history names). */
export function sessionMetricsOf(w: WindowMetrics, stepsPerEpoch: number): SessionMetrics {
  return {
    step: w.step,
    epoch: w.step / stepsPerEpoch,
    loss: w.loss,
    accuracy: w.accuracy,
    learning_rate: w.learning_rate,
    grad_norm: w.gradNorm,
    tokens_per_sec: w.inputTokensPerSec,
    trained_tokens: w.tokens,
    ms_per_step: w.msPerStep,
    num_tensors: w.numTensors,
    steps: w.steps,
  };
}

/** What onMetrics receives every logging_steps steps (and at the end): the window's aggregate. */
export interface SessionMetrics {
  step: number;
  /** Fractional epoch, step / update steps per epoch (as HF logs it). */
  epoch: number;
  /** Mean of the window's step losses (token-weighted within each step), as HF logs `loss`. */
  loss: number;
  /** Next-token accuracy over the window's trained tokens. */
  accuracy: number;
  /** Learning rate of the last step (HF logs it as learning_rate). */
  learning_rate: number;
  /** Gradient norm of the last step, before clipping. */
  grad_norm: number;
  /** Input (non-padding) tokens processed per second over the window. */
  tokens_per_sec: number;
  /** Trained (labelled) tokens in the window. */
  trained_tokens: number;
  ms_per_step: number;
  /** Live tf tensors after the last step; constant unless something leaks. */
  num_tensors: number;
  /** Steps aggregated. */
  steps: number;
  /** When a validation ran after this step. */
  eval_loss?: number;
}

export interface EvalMetrics {
  step: number;
  epoch: number;
  eval_loss: number;
  eval_accuracy: number;
  eval_tokens: number;
  /** Seconds. */
  eval_runtime: number;
}

export interface SampleReport {
  step: number;
  epoch: number;
  samples: GenerationEvalExample[];
}

export interface LogEntry extends Partial<SessionMetrics>, Partial<Omit<EvalMetrics, 'step' | 'epoch'>> {
  step: number;
  epoch: number;
}
