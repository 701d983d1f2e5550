export * from './fixtures';
export * from './gradcheck';
export * from './loss-once';
