/** tf.customGrad with types: the engine's ops with hand-written gradients (ops.ts, loss.ts, webgpu-kernels.ts). */
import * as tf from '@tensorflow/tfjs-core';

/** A differentiable op with a hand-written gradient (typed wrapper over tf.customGrad). */
export function customOp<T extends tf.Tensor>(
  f: (
    inputs: tf.Tensor[],
    save: tf.GradSaveFunc,
  ) => { value: T; gradFunc: (dy: T, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[] },
): (...inputs: tf.Tensor[]) => T {
  const g = (...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
    const save = args.pop() as tf.GradSaveFunc;
    return f(args as tf.Tensor[], save);
  };
  return tf.customGrad(g as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (...inputs: tf.Tensor[]) => T;
}
