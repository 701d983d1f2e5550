// The plugin contract: what a plugin package (and only that) depends on. Platform-neutral: no Node
// built-ins, so it bundles for the browser as it is.
export * from './bus';
export * from './data';
export * from './did-you-mean';
export * from './errors';
export * from './hooks';
export * from './ledger';
export * from './loss';
export * from './ops';
export * from './optim';
export * from './fused-kernels';
export * from './plugin';
export * from './rng';
export * from './spec';
export * from './storage';
export * from './taps';
export * from './task';
export * from './tokens';
export * from './training-access';
// Shared by the plugin packages (which never import one another): the one cross-entropy, the
// role/option helpers of losses, and the calibration math (metrics-ece, DML's peer ensemble, BYOT's exits).
export * from './calibration';
export * from './calibration-bins';
export * from './cross-entropy';
export * from './loss-options';
