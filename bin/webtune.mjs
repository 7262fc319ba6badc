#!/usr/bin/env node
// The webtune command line. The TypeScript sources run through tsx (a dependency), so there is no build step;
// every path is resolved from this file, so it works from any directory and when installed or npm-linked.
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register({ tsconfig: fileURLToPath(new URL('../tsconfig.json', import.meta.url)) });
const { run } = await import(new URL('../src/cli/main.ts', import.meta.url).href);
process.exitCode = await run(process.argv.slice(2));
