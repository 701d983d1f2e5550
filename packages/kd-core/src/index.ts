import 'reflect-metadata';

export * from './backend';
export * from './bus';
export { viewFor, type RecordedTerm } from './context';
export * from './data';
export * from './engine';
export * from './errors';
export * from './hooks';
export * from './ledger';
export * from './loss';
export * from './ops';
export * from './plugin';
export * from './registry';
export { BUILTIN_METRICS, parseTap, type ResolvedPlugin } from './resolve';
export * from './rng';
export { learningRateAt, roleSpecs, type RoleRuntime } from './roles';
export * from './spec';
export * from './tokens';
