import { unzipSync } from 'fflate';
import { describe, expect, it } from 'vitest';
import { zipFiles } from '../../src/io/zip';

describe('zipFiles', () => {
  it('writes a zip whose entries come back byte for byte, in order', () => {
    const big = new Uint8Array(100_000).map((_, i) => (i * 31) & 0xff);
    const zip = zipFiles([
      ['adapter_config.json', new TextEncoder().encode('{"r": 8}\n')],
      ['adapter_model.safetensors', big],
      ['sub/README.md', new TextEncoder().encode('# hi\n')],
    ]);
    expect([...zip.subarray(0, 4)]).toEqual([0x50, 0x4b, 0x03, 0x04]); // PK\3\4
    const out = unzipSync(zip);
    expect(Object.keys(out)).toEqual(['adapter_config.json', 'adapter_model.safetensors', 'sub/README.md']);
    expect(new TextDecoder().decode(out['adapter_config.json'])).toBe('{"r": 8}\n');
    expect(out['adapter_model.safetensors']).toEqual(big);
  });

  it('refuses names that would leave the folder, and repeated names', () => {
    const b = new Uint8Array(1);
    expect(() => zipFiles([['../x', b]])).toThrow(/not a relative file name/);
    expect(() => zipFiles([['/x', b]])).toThrow(/not a relative file name/);
    expect(() =>
      zipFiles([
        ['a', b],
        ['a', b],
      ]),
    ).toThrow(/"a" appears twice/);
  });
});
