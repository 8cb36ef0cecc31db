import { buildApp } from '../lib/app';
import { ColdsealConfigError } from '../lib/config';

buildApp().then(
  ({ app }) => {
    app.synth();
  },
  (error: unknown) => {
    // A configuration mistake is the user's to fix: say which field, without a stack trace.
    console.error(error instanceof ColdsealConfigError ? error.message : error);
    process.exit(1);
  },
);
