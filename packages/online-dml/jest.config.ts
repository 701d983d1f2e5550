/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'online-dml', rootDir: __dirname };
