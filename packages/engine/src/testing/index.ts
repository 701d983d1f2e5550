export * from './contract';
export * from './dot';
