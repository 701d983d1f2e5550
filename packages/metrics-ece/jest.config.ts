/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'metrics-ece', rootDir: __dirname };
