export * from './fixtures';
export * from './gradcheck';
