import * as path from 'path';

/** `kd` run from the TypeScript sources in a child process (the sweep tests spawn it as commands and workers). */
export const BIN = path.join(__dirname, 'from-source.js');

/** The children's environment: no colour, CI mode, and no teacher cache inherited from the caller's shell. */
export const plainEnv: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', CI: '1' };
delete plainEnv.FORCE_COLOR;
delete plainEnv.KD_CACHE_DIR;
