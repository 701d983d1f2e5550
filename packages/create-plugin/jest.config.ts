/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'create-plugin', rootDir: __dirname };
