import * as fs from 'fs';
import * as path from 'path';
import { CreatePluginError, type KdVersions, pluginNames, standaloneFiles } from './plugin-files';

export const USAGE = `usage: create-plugin <name> [--dir <folder>] [--id <kind>/<name>]
       npm create @tfkd/plugin <name> [-- --dir <folder> --id <kind>/<name>]

Writes a tfkd plugin package that builds and tests on its own: a loss (pure function + defineLoss
plugin), its ContainerModule, a value test, a gradient check and the plugin contract
(@tfkd/engine/testing), package.json (kd-core and tfjs-core as peers), tsconfig, jest config, README.

  <name>        npm package name, kebab-case (cosine-kd), or @scope/cosine-kd
  --dir <path>  folder to write (default ./<name without scope>); must be empty or absent
  --id <id>     plugin id a spec's \`use:\` names (default loss/<name>)
  -h, --help    this text
  -v, --version the generator's version

Then: cd <folder> && npm install && npm test
`;

export interface Io {
  out: (s: string) => void;
  err: (s: string) => void;
  cwd: string;
}

const defaultIo = (): Io => ({ out: (s) => process.stdout.write(s), err: (s) => process.stderr.write(s), cwd: process.cwd() });

interface Args {
  name?: string;
  dir?: string;
  id?: string;
  help?: boolean;
  version?: boolean;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {};
  const value = (flag: string, v: string | undefined): string => {
    if (v === undefined || v === '' || v.startsWith('-')) {
      throw new CreatePluginError('KD_CREATE_USAGE', `${flag} needs a value.`, `e.g. ${flag === '--dir' ? '--dir plugins/my-loss' : '--id loss/my-loss'} (create-plugin --help)`);
    }
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const eq = /^(--dir|--id)=(.*)$/.exec(arg);
    if (arg === '-h' || arg === '--help') a.help = true;
    else if (arg === '-v' || arg === '--version') a.version = true;
    else if (eq) a[eq[1] === '--dir' ? 'dir' : 'id'] = value(eq[1], eq[2]);
    else if (arg === '--dir' || arg === '--id') a[arg === '--dir' ? 'dir' : 'id'] = value(arg, argv[++i]);
    else if (arg.startsWith('-')) throw new CreatePluginError('KD_CREATE_USAGE', `unknown option '${arg}'.`, 'see create-plugin --help');
    else if (a.name === undefined) a.name = arg;
    else throw new CreatePluginError('KD_CREATE_USAGE', `one package name only; got '${a.name}' and '${arg}'.`, 'give one name, and --dir for the folder');
  }
  return a;
}

/** This package's manifest: its version, and the kd-core and engine versions it was released with. */
function ownPackage(): { version: string; devDependencies: Record<string, string> } {
  return JSON.parse(fs.readFileSync(path.join(__dirname, '..', 'package.json'), 'utf8'));
}

/** The kd-core and engine versions a new package is written against: the ones released with this generator. */
export function kdVersions(): KdVersions {
  const dev = ownPackage().devDependencies;
  return { kdCore: dev['@tfkd/kd-core'], engine: dev['@tfkd/engine'] };
}

/** Writes the package; returns the folder and the files written (relative to it). */
export function createPlugin(o: { name: string; dir?: string; id?: string; cwd?: string; versions?: KdVersions }): { dir: string; files: string[] } {
  const names = pluginNames(o.name, o.id);
  const dir = path.resolve(o.cwd ?? process.cwd(), o.dir ?? names.name);
  let present: string[] = [];
  try {
    present = fs.statSync(dir).isDirectory() ? fs.readdirSync(dir) : ['(a file)'];
  } catch {
    present = [];
  }
  if (present.length > 0) {
    throw new CreatePluginError('KD_CREATE_EXISTS', `${dir} exists and is not an empty folder.`, `choose another name, or another folder with --dir`);
  }
  const files = standaloneFiles(names, o.versions ?? kdVersions());
  try {
    for (const [file, content] of files) {
      fs.mkdirSync(path.dirname(path.join(dir, file)), { recursive: true });
      fs.writeFileSync(path.join(dir, file), content, { flag: 'wx' });
    }
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    throw new CreatePluginError('KD_CREATE_WRITE', `could not write into ${dir}: ${err.code ?? ''} ${err.message}`.replace(/\s+/g, ' ').trim(), 'give --dir a folder you may write, on a disk with room');
  }
  return { dir, files: files.map(([f]) => f) };
}

/** `create-plugin …`: 0 written (or help), 2 a user error (one line, coded), 1 an unexpected failure. */
export function main(argv: string[], io: Io = defaultIo()): number {
  try {
    const a = parseArgs(argv);
    if (a.help) {
      io.out(USAGE);
      return 0;
    }
    if (a.version) {
      io.out(`${ownPackage().version}\n`);
      return 0;
    }
    if (a.name === undefined) {
      throw new CreatePluginError('KD_CREATE_USAGE', 'no package name given.', 'npm create @tfkd/plugin my-loss (create-plugin --help)');
    }
    const { dir, files } = createPlugin({ name: a.name, dir: a.dir, id: a.id, cwd: io.cwd });
    const shown = path.relative(io.cwd, dir) || '.';
    for (const f of files) io.out(`created ${path.join(shown, f)}\n`);
    io.out(`\nnext:\n  cd ${shown}\n  npm install\n  npm test     # type check, value test, gradient check, plugin contract\n`);
    return 0;
  } catch (e) {
    if (e instanceof CreatePluginError) {
      io.err(`error ${e.format()}\n`);
      return 2;
    }
    io.err(`error (unexpected, please report it): ${(e as Error)?.stack ?? String(e)}\n`);
    return 1;
  }
}
