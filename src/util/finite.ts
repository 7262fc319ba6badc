/** Where a float array first holds NaN or ±Infinity: weights read from a file must be finite numbers. */

/** Index of the first NaN/±Infinity in `data`, or -1. */
export function firstNonFinite(data: Float32Array | Float64Array): number {
  for (let i = 0; i < data.length; i++) {
    // x - x is 0 for finite x and NaN for NaN and ±Infinity: one comparison per element.
    if (data[i] - data[i] !== 0) return i;
  }
  return -1;
}

/** "NaN at element [3, 17] (flat index 401)" for a tensor of `shape`. */
export function describeNonFinite(data: Float32Array | Float64Array, index: number, shape: number[]): string {
  const coords: number[] = [];
  let rest = index;
  for (let d = shape.length - 1; d >= 0; d--) {
    coords.unshift(rest % shape[d]);
    rest = Math.floor(rest / shape[d]);
  }
  return `${String(data[index])} at element [${coords.join(', ')}]${shape.length > 1 ? ` (flat index ${index})` : ''}`;
}

/** Throws, naming `file`, the tensor and the element, when any tensor holds NaN or ±Infinity. */
export function checkFinite(
  tensors: Iterable<[string, { shape: number[]; data: Float32Array }]>,
  file: string,
  what = 'weights must be finite numbers (the file is damaged, or was saved from a run that diverged)',
): void {
  for (const [name, t] of tensors) {
    const bad = firstNonFinite(t.data);
    if (bad >= 0)
      throw new Error(`${file}: tensor "${name}" holds ${describeNonFinite(t.data, bad, t.shape)}: ${what}`);
  }
}

/** A value JSON cannot hold (NaN, ±Infinity) at `path` (e.g. "mean_nll", "history[3].loss"). */
export class NonFiniteJsonError extends Error {
  constructor(
    readonly path: string,
    readonly value: number,
  ) {
    super(`${path} is ${String(value)}, which JSON cannot represent (JSON.stringify would write null and hide it)`);
    this.name = 'NonFiniteJsonError';
  }
}

/**
 * JSON.stringify that refuses NaN and ±Infinity instead of silently writing null: throws NonFiniteJsonError
 * naming the first such field.
 */
export function stringifyFinite(value: unknown, indent?: number): string {
  const paths = new Map<object, string>();
  return JSON.stringify(
    value,
    function (this: unknown, key: string, v: unknown) {
      const parent = this as object;
      const base = paths.get(parent) ?? '';
      const path = key === '' ? '' : Array.isArray(parent) ? `${base}[${key}]` : base ? `${base}.${key}` : key;
      if (typeof v === 'number' && !Number.isFinite(v)) throw new NonFiniteJsonError(path || '(value)', v);
      if (v !== null && typeof v === 'object') paths.set(v, path);
      return v;
    },
    indent,
  );
}
