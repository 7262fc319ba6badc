import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ROOT } from '../helpers';

// src/io runs in browsers and workers too: only files meant for Node (node-*.ts) may import node: modules.
describe('src/io portability', () => {
  it('has no node: imports outside node-*.ts', async () => {
    const dir = path.join(ROOT, 'src', 'io');
    const offenders: string[] = [];
    for (const f of await readdir(dir)) {
      if (!/\.tsx?$/.test(f) || f.startsWith('node-')) continue;
      const src = await readFile(path.join(dir, f), 'utf8');
      if (/(from\s+|import\s*\(\s*|require\s*\(\s*)['"](node:|fs['"/]|path['"]|os['"]|http['"])/.test(src))
        offenders.push(f);
    }
    expect(offenders).toEqual([]);
  });
});
