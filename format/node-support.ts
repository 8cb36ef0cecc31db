/**
 * Which Node.js versions coldseal's CLI runs on (`npm run coldseal`, the bundle in dist/agent), and
 * how a machine gets one. Hosts need none: the SSM document runs the self-contained executable,
 * which carries its own Node (format/agent-executables.ts). The Lambdas run on nodejs24.x. The
 * minimum is the bundled AWS SDK's (its releases need Node >= 20); package.json's engines, the
 * CLI's notice, `npm run setup` and the README all take it from here. AWS SDK releases published
 * after the first week of January 2027 require Node >= 22 (its own NodeVersionSupportWarning says
 * so), so a CLI on Node 20 keeps working with the SDK it was built with, but gets no SDK update
 * after that.
 */
export const NODE_SUPPORT = {
  /** The oldest major the agent runs on. */
  minimumMajor: 20,
  /** The oldest major that newer AWS SDK releases (and so newer coldseal releases) will run on. */
  sdkMinimumMajor: 22,
  sdkMinimumFrom: 'the first week of January 2027',
  /** The Lambdas' runtime and the self-contained agent's, and the best choice for laptops. */
  recommendedMajor: 24,
} as const;
