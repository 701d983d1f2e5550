import type { Config } from 'jest';

// One jest run over every package (each package also has its own config for `nx test`).
const config: Config = {
  projects: ['<rootDir>/packages/*/jest.config.ts'],
};
export default config;
