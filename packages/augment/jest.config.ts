/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'augment', rootDir: __dirname };
