// `npm create @tfkd/plugin <name>` (bin: create-plugin) — and the same from code.
export { createPlugin, kdVersions, main, USAGE, type Io } from './cli';
export {
  camel,
  CREATE_ERROR_CODES,
  CreatePluginError,
  pluginNames,
  readme,
  sourceFiles,
  standaloneFiles,
  TOOL_VERSIONS,
  type CreateErrorCode,
  type KdVersions,
  type PluginNames,
  type ReadmeContext,
} from './plugin-files';
