/* eslint-disable */
const preset = require('../../jest.preset.js');
export default { ...preset, displayName: 'sweep', rootDir: __dirname };
