'use strict';

// Preload: `node -r @shoal-mesh/node/trace app.js` (or NODE_OPTIONS) forwards
// the trace headers of each incoming request to the outgoing requests made
// while serving it. See lib/trace.js.
require('./lib/trace').install();
module.exports = require('./lib/trace');
