export * from './backend';
export * from './checkpoint';
export { type RecordedTerm } from './context';
export * from './engine';
export { evaluateRoles } from './evaluate-task';
export * from './execute';
export * from './generations';
export * from './generations-run';
export * from './plan';
export * from './plugin-state';
export * from './registry';
export { BUILTIN_METRICS, type ResolvedPlugin } from './resolve';
export { loadRunData, type RunData } from './run-data';
export { RESERVED_PHASES, layersUpTo, type Phase } from './stages';
export { learningRateAt, roleSpecs, type RoleRuntime } from './roles';
export type { PlayerRuntime, PlayerStep } from './players';
export type { ProvidedTeacher } from './setup';
export * from './storage';
export { sha256Hex } from './hash';
export { teacherRun, type TeacherRun } from './teachers';
export { trainingAccess } from './training-access';
export { applyView, viewFor } from './view';
export {
  distill,
  type DistillCallback,
  type DistillConfig,
  type DistillHistory,
  type DistillPlugin,
} from './distill';
export { datasetFromCode, type DataInput, type TfDataLike } from './code-data';
export { graphTeacher, type GraphModelLike } from './graph-teacher';
export { packageLines, resolvedSpec } from './record';
export type { LoadedPackage, PackageLoader } from './registry';
