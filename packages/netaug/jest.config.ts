/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'netaug', rootDir: __dirname };
