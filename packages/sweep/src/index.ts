export * from './plan';
export * from './queue';
export * from './redis';
export * from './sweep';
export * from './sweep-file';
export * from './table';
export * from './worker';
