/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'self-distill', rootDir: __dirname };
