/**
 * Continue training from a checkpoint on disk (the CLI's --resume-from-checkpoint): a run folder, a checkpoint
 * folder or a bundle file (./node.ts loadCheckpointFromPath) resumed as a FinetuneSession. Node only.
 */
import type { SessionCheckpoint } from '../train/checkpoint';
import { FinetuneSession, type FinetuneSessionInit } from '../train/session';
import { loadCheckpointFromPath } from './node';

/**
 * --resume-from-checkpoint: load the checkpoint at `dir` (see loadCheckpointFromPath) and continue it in a new
 * FinetuneSession on `init.model` with `init.data`. The configuration is the checkpoint's unless init.config is given,
 * in which case it must resolve to the same (differences are listed in the error). Throws CheckpointMismatchError when
 * the model weights or the tokenized data differ from the checkpoint's.
 * The returned session's run() continues at step checkpoint.meta.progress.global_step + 1.
 */
export async function resumeSessionFromDir(
  dir: string,
  init: FinetuneSessionInit,
): Promise<{ session: FinetuneSession; checkpoint: SessionCheckpoint; source: string }> {
  const { checkpoint, source } = await loadCheckpointFromPath(dir);
  const session = await FinetuneSession.resume(init, checkpoint);
  return { session, checkpoint, source };
}
