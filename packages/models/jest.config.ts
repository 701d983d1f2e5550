/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'models', rootDir: __dirname };
