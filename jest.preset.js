// Shared jest settings for every package: SWC transpiles TypeScript (type checking is the
// build's job), and workspace imports resolve to sources so tests never need a build first.
const path = require('path');
module.exports = {
  testEnvironment: 'node',
  transform: {
    '^.+\\.ts$': ['@swc/jest', require('./swc.options')],
  },
  moduleFileExtensions: ['ts', 'js', 'json'],
  moduleNameMapper: {
    '^@tfkd/([a-z0-9-]+)$': path.join(__dirname, 'packages/$1/src/index.ts'),
    '^@tfkd/([a-z0-9-]+)/testing$': path.join(__dirname, 'packages/$1/src/testing/index.ts'),
    '^@tfkd/([a-z0-9-]+)/node$': path.join(__dirname, 'packages/$1/src/node/index.ts'),
  },
  testMatch: ['<rootDir>/src/**/*.spec.ts'],
  setupFiles: [path.join(__dirname, 'jest.setup.js')],
};
