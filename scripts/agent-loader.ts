import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { Module } from 'node:module';
import { compileWithCodeCache } from './code-cache';

/**
 * The first lines of the agent bundle (build-agent.ts puts the agent after them, inside a
 * comment): compiles the agent with V8's code cache, kept next to the bundle (code-cache.ts says
 * why and how safely). With the cache, start-up (`--version`) goes from ~0.27 s to ~0.17 s.
 */
// Joined at run time, so that this file's own text does not contain the marker it looks for.
const AGENT_START = ['/*', 'coldseal', 'agent', 'follows'].join(' ') + '\n';

const bundle = __filename;

/** The agent's source, out of the bundle's text (which is not kept: it is as large as the agent). */
function compile() {
  const file = readFileSync(bundle);
  const text = file.toString('latin1');
  const start = text.indexOf(AGENT_START);
  const end = text.lastIndexOf('*/');
  if (start < 0 || end < start) throw new Error(`${bundle} is damaged: the agent inside it is missing (download it again)`);
  const bodyStart = start + AGENT_START.length;
  // The agent sits in a block comment, so its comment terminators carry a backslash before the slash.
  const body = text.slice(bodyStart, end).split('*\\/').join('*/');
  // The bundle's bytes, not the agent's text: the same identity, without encoding 3 MB again.
  const stamp = createHash('sha256').update(file).update(`\0${process.version}\0${process.arch}`).digest();
  return compileWithCodeCache({ source: Module.wrap(body), filename: bundle, lineOffset: text.slice(0, bodyStart).split('\n').length - 1, cacheFile: `${bundle}.v8cache`, stamp });
}

const run = compile().runInThisContext() as (exports: unknown, require: NodeJS.Require, module: NodeJS.Module, filename: string, dirname: string) => void;
run.call(module.exports, module.exports, require, module, bundle, dirname(bundle));
