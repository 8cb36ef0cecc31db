/**
 * Which Node.js versions coldseal runs on. The agent runs on the hosts' Node (package.json engines:
 * >= 20); the Lambdas run on nodejs24.x. The AWS SDK for JavaScript v3 releases published after the
 * first week of January 2027 require Node >= 22 (its own NodeVersionSupportWarning says so), so an
 * agent on Node 20 keeps working with the SDK it was built with, but gets no SDK update after that.
 */
export const NODE_SUPPORT = {
  /** The oldest major the agent runs on. */
  minimumMajor: 20,
  /** The oldest major that newer AWS SDK releases (and so newer coldseal releases) will run on. */
  sdkMinimumMajor: 22,
  sdkMinimumFrom: 'the first week of January 2027',
  /** The Lambdas' runtime, and the best choice for hosts. */
  recommendedMajor: 24,
} as const;
