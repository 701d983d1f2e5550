/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'datasets', rootDir: __dirname };
