/**
 * The plumbing shared by our WGSL kernels (webgpu-kernels.ts, webgpu-attention.ts): the shape of a program as
 * tfjs-backend-webgpu's runWebGPUProgram reads it, running one, and the two program forms used (a workgroup per row
 * with a reduction in workgroup memory, or one invocation per output element).
 * Nothing here imports tfjs-backend-webgpu (its import registers the backend): the program objects are written out.
 *
 * Conventions of the backend's shader generator (node_modules/@tensorflow/tfjs-backend-webgpu/dist/webgpu_program.js):
 * the output buffer is `result`, inputs are bound under their variableNames, shapes come as uniforms
 * (`uniforms.<name>Shape`, the name's first letter lower-cased: an input `A` has `uniforms.aShape`; a wrong name
 * fails the shader, and with it every program of its command buffer, silently), program uniforms are appended to the Uniforms struct, and with a dispatch layout that has
 * only an x part, `main(index)` is called by every invocation. The builtins are copied into module-scope private
 * variables (localId, workgroupId, numWorkgroups), which WGSL's uniformity analysis treats as non-uniform: so no
 * early return before a barrier, and barriers only in loops with constant bounds.
 */
import * as tf from '@tensorflow/tfjs-core';

/** What runWebGPUProgram reads of a program (tfjs-backend-webgpu's WebGPUProgram, the members used here). */
export interface WebGpuProgram {
  variableNames: string[];
  outputShape: number[];
  shaderKey: string;
  dispatchLayout: { x: number[] };
  dispatch: [number, number, number];
  workgroupSize: [number, number, number];
  uniforms?: string;
  size?: boolean;
  getUserCode(): string;
}

export type ProgramUniform = { type: 'float32' | 'int32'; data: number[] }[];

interface WebGpuBackendLike {
  runWebGPUProgram(
    program: WebGpuProgram,
    inputs: tf.TensorInfo[],
    outputDtype: tf.DataType,
    uniforms?: ProgramUniform,
    output?: tf.TensorInfo,
  ): tf.TensorInfo;
}

let enabled = true;

/** Turn our kernels off (or on again), e.g. to compare with the plain ops. */
export function setWebgpuKernels(on: boolean): void {
  enabled = on;
}

/** True when the engine's fused WGSL kernels are to be used: the active backend is webgpu and they are enabled. */
export function webgpuKernelsActive(): boolean {
  return enabled && tf.getBackend() === 'webgpu';
}

export function run(
  program: WebGpuProgram,
  inputs: tf.Tensor[],
  dtype: tf.DataType,
  uniforms?: ProgramUniform,
): tf.Tensor {
  const backend = tf.backend() as unknown as WebGpuBackendLike;
  const info = backend.runWebGPUProgram(program, inputs, dtype, uniforms);
  return tf.engine().makeTensorFromTensorInfo(info);
}

/**
 * Run a program that writes into `out` in place (the backend's own output argument): for programs that add into
 * chosen elements of a larger buffer (its `result`, which they also read). The dispatch covers the program's
 * outputShape, not `out`.
 */
export function runInto(program: WebGpuProgram, inputs: tf.Tensor[], out: tf.Tensor, uniforms?: ProgramUniform): void {
  const backend = tf.backend() as unknown as WebGpuBackendLike;
  backend.runWebGPUProgram(program, inputs, out.dtype, uniforms, out);
}

/** Workgroup size of the row kernels (a power of two: the tree reduction halves it). */
export const ROW_WG = 64;
export const CE_WG = 128;

/** The index of this workgroup's row (the backend may spread a long x dispatch over y and z). */
export const ROW_INDEX = `i32(workgroupId.z * numWorkgroups.x * numWorkgroups.y + workgroupId.y * numWorkgroups.x + workgroupId.x)`;

/** A tree sum of `arr` (workgroup memory of `wg` floats) into arr[0]; every invocation reaches each barrier. */
export const treeSum = (arr: string, wg: number) => `
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { ${arr}[lid] = ${arr}[lid] + ${arr}[lid + s]; }
    workgroupBarrier();
  }`;

/** Two tree sums at once (arrays `a` and `b`, `wg` floats each) into a[0] and b[0]. */
export const treeSum2 = (a: string, b: string, wg: number) => `
  workgroupBarrier();
  for (var s = ${wg / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) {
      ${a}[lid] = ${a}[lid] + ${a}[lid + s];
      ${b}[lid] = ${b}[lid] + ${b}[lid + s];
    }
    workgroupBarrier();
  }`;

export function rowProgram(
  key: string,
  variableNames: string[],
  outputShape: number[],
  rows: number,
  wg: number,
  code: string,
  uniforms?: string,
): WebGpuProgram {
  return {
    variableNames,
    outputShape,
    shaderKey: key,
    dispatchLayout: { x: [0] },
    dispatch: [rows, 1, 1],
    workgroupSize: [wg, 1, 1],
    uniforms,
    getUserCode: () => code,
  };
}

export function elementwiseProgram(key: string, variableNames: string[], shape: number[], body: string): WebGpuProgram {
  const size = shape.reduce((a, b) => a * b, 1);
  const wg = 128;
  return {
    variableNames,
    outputShape: shape,
    shaderKey: key,
    dispatchLayout: { x: shape.map((_, i) => i) },
    dispatch: [Math.ceil(size / wg), 1, 1],
    workgroupSize: [wg, 1, 1],
    size: true,
    getUserCode: () => `
      fn main(index : i32) {
        if (index < uniforms.size) {
          ${body}
        }
      }`,
  };
}
