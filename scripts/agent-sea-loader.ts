import { createHash } from 'node:crypto';
import { dirname } from 'node:path';
import { Module } from 'node:module';
import { getAsset } from 'node:sea';
import { compileWithCodeCache } from './code-cache';

/**
 * The main script of the self-contained agent (a Node single executable application, built by
 * build-agent.ts): the agent itself is an asset of the executable, compiled here with V8's code
 * cache kept next to the executable (code-cache.ts). Node's own build-time code cache
 * (useCodeCache) would do the same without a file, but its output differs from build to build,
 * and the executables must be reproducible.
 */
declare const __COLDSEAL_AGENT_SHA256__: string;

const executable = process.execPath;

function compile() {
  const source = getAsset('agent.js', 'utf8');
  const stamp = createHash('sha256').update(`${__COLDSEAL_AGENT_SHA256__}\0${process.version}\0${process.arch}`).digest();
  return compileWithCodeCache({ source: Module.wrap(source), filename: executable, lineOffset: 0, cacheFile: `${executable}.v8cache`, stamp });
}

const run = compile().runInThisContext() as (exports: unknown, require: NodeJS.Require, module: NodeJS.Module, filename: string, dirname: string) => void;
run.call(module.exports, module.exports, require, module, executable, dirname(executable));
