/** A value for an error message: its JSON, shortened; safe on values nested too deeply for JSON.stringify. */
export function preview(v: unknown, max = 120): string {
  let s: string;
  try {
    s = typeof v === 'number' && !Number.isFinite(v) ? String(v) : (JSON.stringify(v) ?? String(v));
  } catch {
    return Array.isArray(v) ? '[…] (nested too deeply to show)' : '{…} (nested too deeply to show)';
  }
  return s.length > max ? `${s.slice(0, max)}… (${s.length} characters)` : s;
}
