import { probe } from './health-probe.js';

/** `node dist/src/server/healthcheck.js`: the Dockerfile's HEALTHCHECK (src/server/health-probe.ts). */
process.exitCode = await probe(process.argv.slice(2), process.env);
