import { test } from 'node:test';
import assert from 'node:assert/strict';
import type { SendCommandCommandInput } from '@aws-sdk/client-ssm';
import { EXIT } from '../../agent/src/errors';
import { responseCode, type CommandState, type Invocation, type ManagedHost, type TriggerSsm } from '../../agent/src/trigger/ssm';
import { hostLabel, outputTail, waitExitCode, waitForCommand, type WaitProgress } from '../../agent/src/trigger/wait';

const run = (instanceId: string, status: string, responseCode?: number): Invocation => ({ instanceId, instanceName: `${instanceId}.example.internal`, status, statusDetails: status, responseCode, output: '' });

test('waitExitCode: OK, PARTIAL, the agent\'s own code when every host failed the same way, else FAILURE', () => {
  const cases: [boolean, Invocation[], number, string][] = [
    [true, [run('a', 'Success', 0), run('b', 'Success', 0)], EXIT.OK, 'all succeeded'],
    [true, [], EXIT.FAILURE, 'no host received it'],
    [false, [run('a', 'Success', 0), run('b', 'Success', 0)], EXIT.PARTIAL, 'the time limit came first: hosts SSM had not listed yet may still run'],
    [true, [run('a', 'Success', 0), run('b', 'Failed', 4)], EXIT.PARTIAL, 'some succeeded'],
    [false, [run('a', 'Success', 0), run('b', 'InProgress')], EXIT.PARTIAL, 'some succeeded, others still running'],
    [true, [run('a', 'Failed', EXIT.SOURCE), run('b', 'Failed', EXIT.SOURCE)], EXIT.SOURCE, 'one cause everywhere'],
    [true, [run('a', 'Failed', EXIT.INTEGRITY)], EXIT.INTEGRITY, 'one host'],
    [true, [run('a', 'Failed', EXIT.SOURCE), run('b', 'Failed', EXIT.STORAGE)], EXIT.FAILURE, 'mixed causes'],
    [true, [run('a', 'TimedOut', EXIT.SOURCE)], EXIT.FAILURE, 'an SSM-level failure is not the agent\'s code'],
    [true, [run('a', 'Failed', 137)], EXIT.FAILURE, 'a code the agent never uses (killed)'],
    [false, [run('a', 'Failed', EXIT.SOURCE)], EXIT.FAILURE, 'not finished'],
  ];
  for (const [finished, invocations, code, why] of cases) assert.equal(waitExitCode({ finished, invocations }), code, why);
});

test('outputTail and hostLabel', () => {
  assert.deepEqual(outputTail('a\nb\nc\n\n  \n', 2), ['b', 'c']);
  assert.equal(outputTail(Array.from({ length: 40 }, (_, i) => `l${i}`).join('\n')).length, 15);
  assert.equal(hostLabel({ instanceId: 'i-1', instanceName: 'web-1.example.internal' }), 'web-1 (i-1)');
  assert.equal(hostLabel({ instanceId: 'i-1', instanceName: '' }), 'i-1');
});

/** SSM answering from a script of (command, invocations) states, one per poll, the last one repeated. */
class ScriptedSsm implements TriggerSsm {
  polls = 0;
  constructor(private readonly script: [CommandState | null, Invocation[]][]) {}
  private step(): [CommandState | null, Invocation[]] {
    return this.script[Math.min(this.polls, this.script.length - 1)];
  }
  async command(): Promise<CommandState | null> {
    return this.step()[0];
  }
  async invocations(): Promise<Invocation[]> {
    const [, invocations] = this.step();
    this.polls++;
    return invocations;
  }
  getParameter(): Promise<string | null> {
    throw new Error('not used');
  }
  listTaggedHosts(): Promise<ManagedHost[]> {
    throw new Error('not used');
  }
  sendCommand(_input: SendCommandCommandInput): Promise<string> {
    throw new Error('not used');
  }
}

/** A clock the waiting's sleep advances: no real time passes. */
function fakeTime(): { now: () => number; sleep: (ms: number) => Promise<void>; slept: number[] } {
  let t = 0;
  const slept: number[] = [];
  return { now: () => t, sleep: async (ms) => void (slept.push(ms), (t += ms)), slept };
}

test('waitForCommand: until SSM has resolved the tag and every host is done; progress when counts change', async () => {
  const ssm = new ScriptedSsm([
    [null, []], // SSM does not know the command yet
    [{ status: 'InProgress', targetCount: 0 }, []], // targets not resolved yet: not done
    [{ status: 'InProgress', targetCount: 2 }, [run('a', 'InProgress')]],
    [{ status: 'InProgress', targetCount: 2 }, [run('a', 'Success', 0), run('b', 'InProgress')]],
    [{ status: 'Success', targetCount: 2 }, [run('a', 'Success', 0), run('b', 'Success', 0)]],
  ]);
  const time = fakeTime();
  const progress: WaitProgress[] = [];
  const outcome = await waitForCommand(ssm, 'cmd-1', { limitSeconds: 3600, pollSeconds: 5, heartbeatSeconds: 600, ...time, onProgress: (p) => progress.push(p) });
  assert.equal(outcome.finished, true);
  assert.equal(outcome.commandStatus, 'Success');
  assert.equal(outcome.elapsedSeconds, 20);
  assert.equal(ssm.polls, 5);
  assert.deepEqual(time.slept, [5000, 5000, 5000, 5000]);
  assert.deepEqual(progress.map((p) => [p.elapsedSeconds, p.targets, p.byStatus]), [
    [0, 0, {}],
    [5, 0, {}],
    [10, 2, { InProgress: 1 }],
    [15, 2, { Success: 1, InProgress: 1 }],
    [20, 2, { Success: 2 }],
  ]);
  assert.equal(waitExitCode(outcome), EXIT.OK);
});

test('waitForCommand: the time limit ends the wait (the last sleep is cut to it); unchanged counts report only at the heartbeat', async () => {
  const ssm = new ScriptedSsm([[{ status: 'InProgress', targetCount: 1 }, [run('a', 'InProgress')]]]);
  const time = fakeTime();
  const progress: number[] = [];
  const outcome = await waitForCommand(ssm, 'cmd-2', { limitSeconds: 25, pollSeconds: 10, heartbeatSeconds: 20, ...time, onProgress: (p) => progress.push(p.elapsedSeconds) });
  assert.equal(outcome.finished, false);
  assert.deepEqual(time.slept, [10000, 10000, 5000]);
  assert.equal(outcome.elapsedSeconds, 25);
  assert.deepEqual(progress, [0, 20]);
  assert.equal(waitExitCode(outcome), EXIT.FAILURE);
});

test("a host's code is the failed step's, else the last step's: the downloads' 0 never hides the agent's exit code", () => {
  const step = (ResponseCode: number) => ({ ResponseCode });
  assert.equal(responseCode([step(0), step(0), step(3)]), 3);
  assert.equal(responseCode([step(0), step(0), step(0)]), 0);
  // A failed download stops the document there: the later steps never ran (SSM reports -1).
  assert.equal(responseCode([step(1), step(-1), step(-1)]), 1);
  assert.equal(responseCode([step(-1), step(-1), step(-1)]), -1);
  assert.equal(responseCode([]), undefined);
});
