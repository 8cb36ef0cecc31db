import { buildAgentSync } from '../../scripts/build-agent';
import { buildApp } from '../lib/build-app';
import { ColdsealConfigError } from '../lib/settings';

// The app is what puts the pieces together: the agent bundle is built here and handed to the stack.
buildApp({ agentBundle: buildAgentSync }).then(
  ({ app }) => {
    app.synth();
  },
  (error: unknown) => {
    // A configuration mistake is the user's to fix: say which field, without a stack trace.
    console.error(error instanceof ColdsealConfigError ? error.message : error);
    process.exit(1);
  },
);
