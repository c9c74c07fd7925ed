// Failure messages and stack traces go through the payload codec like any payload, so a
// connector error that names an account (a GitHub login, an LDAP DN) is not stored in plain text.
// CommonJS on purpose: the Temporal SDK loads this file with require() (clients) and bundles it
// into the workflow sandbox (workers), and both work with a plain .cjs module.
const { DefaultFailureConverter } = require('@temporalio/common');

exports.failureConverter = new DefaultFailureConverter({ encodeCommonAttributes: true });
