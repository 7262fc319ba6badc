/** A 100 MB JSON Lines dataset parses in chunks: progress is reported and the event loop keeps running meanwhile. */
import { describe, it, expect } from 'vitest';
import { parseDatasetAsync, type ParseProgress } from '../../src/data/formats';

describe('large dataset files', () => {
  it('parses 100 MB of JSONL in chunks with progress, keeping valid rows and listing the bad ones', async () => {
    const enc = new TextEncoder();
    const rowsWanted = 400_000;
    const pad = 'x'.repeat(200);
    const lines: string[] = [];
    for (let i = 0; i < rowsWanted; i++) {
      if (i === 12345)
        lines.push('{"instruction": "broken", "output": '); // malformed line
      else lines.push(JSON.stringify({ instruction: `Task ${i}: repeat ${pad}`, input: '', output: `answer ${i}` }));
    }
    const bytes = enc.encode(lines.join('\r\n') + '\r\n');
    expect(bytes.length).toBeGreaterThan(100e6);
    const progress: ParseProgress[] = [];
    let ticks = 0;
    const timer = setInterval(() => {
      ticks++;
    }, 1);
    const res = await parseDatasetAsync(bytes, 'big.jsonl', { onProgress: (p) => progress.push(p) });
    clearInterval(timer);
    expect(res.format).toBe('alpaca');
    expect(res.examples.length).toBe(rowsWanted - 1);
    expect(res.errors).toHaveLength(1);
    expect(res.errors[0].line).toBe(12346);
    expect(progress.filter((p) => p.phase === 'read').length).toBeGreaterThan(100);
    expect(progress.filter((p) => p.phase === 'convert').length).toBeGreaterThan(100);
    const reads = progress.filter((p) => p.phase === 'read').map((p) => p.done);
    expect(reads).toEqual([...reads].sort((a, b) => a - b));
    expect(ticks).toBeGreaterThan(10); // timers ran while parsing: the thread was never blocked for the whole parse
  });
});
