import { buildAgentExecutablesSync } from '../../scripts/build-agent';
import { buildApp } from '../lib/build-app';
import { ColdsealConfigError } from '../lib/settings';

// The app is what puts the pieces together: the agent executables are built here and handed to the stack.
buildApp({ agentExecutables: buildAgentExecutablesSync }).then(
  ({ app }) => {
    app.synth();
  },
  (error: unknown) => {
    // A configuration mistake is the user's to fix: say which field, without a stack trace.
    console.error(error instanceof ColdsealConfigError ? error.message : error);
    process.exit(1);
  },
);
