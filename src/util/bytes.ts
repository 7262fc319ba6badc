/** Byte counts for people, in binary units written GB / MB / KB: "5.2 GB", "540 MB", "5.9 MB", "12 KB", "300 bytes". */
export function formatBytes(n: number | null | undefined): string {
  if (n == null || !Number.isFinite(n)) return '?';
  const GB = 2 ** 30,
    MB = 2 ** 20;
  const trim = (s: string) => s.replace(/\.0$/, '');
  if (n >= 1024 * GB) return `${trim((n / (1024 * GB)).toFixed(1))} TB`;
  if (n >= GB) return `${trim((n / GB).toFixed(1))} GB`;
  if (n >= 10 * MB) return `${Math.round(n / MB)} MB`;
  if (n >= 0.1 * MB) return `${trim((n / MB).toFixed(1))} MB`;
  if (n >= 1024) return `${Math.round(n / 1024)} KB`;
  return `${Math.round(n)} bytes`;
}
