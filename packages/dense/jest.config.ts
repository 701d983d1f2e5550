/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'dense', rootDir: __dirname };
