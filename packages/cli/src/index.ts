export * from './main';
export * from './run';
export * from './adapters';
export * from './eval';
export * from './list';
export * from './modules';
export { writeFileAtomic, StagedFolder } from './output';
