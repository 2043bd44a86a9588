// frontends.mjs -- starts Apache httpd (mod_proxy_fcgi, or mod_fcgid starting the program itself) and Caddy in
// a temporary directory, each from the repository's own deploy/ file with only the port, the socket path, the
// document root and the settings substituted, as harness.mjs does for nginx-fastcgi.conf.
import fs from 'node:fs';
import path from 'node:path';
import { execFileSync } from 'node:child_process';
import { ROOT, startProcess, waitFor } from './harness.mjs';

const BIN = path.join(ROOT, 'build/ollama-fcgi');
const APACHE_MODULES = '/usr/lib/apache2/modules';
const IS_ROOT = process.getuid?.() === 0;

// Apache will not serve as root: its children run as www-data, which must reach the files and sockets in
// the test's directories (mkdtemp makes them 0700).
export function openToWebServer(dir) {
  if (IS_ROOT) fs.chmodSync(dir, 0o755);
}

// A missing server is named with the way to get it, rather than left to fail as a timeout.
function need(what, candidates, pkg) {
  const found = candidates.find((b) => fs.existsSync(b));
  if (!found) throw new Error(`${what} is not installed (${pkg}); scripts/deps.sh test installs it`);
  return found;
}

const apacheBinary = () => need('Apache httpd', ['/usr/sbin/apache2', '/usr/sbin/httpd'], 'Debian: apache2');

function runAs() {
  if (!IS_ROOT) return '';
  try {
    execFileSync('id', ['www-data'], { stdio: 'ignore' });
    return 'User www-data\nGroup www-data\n';
  } catch {
    return 'User nobody\nGroup nogroup\n';
  }
}

// The main configuration around a shipped site file: private ServerRoot, pid file, logs and mutexes, only
// the modules named, and the site included as /etc/apache2/sites-enabled would include it.
function apacheConfig(dir, modules, siteFile, extra = '') {
  for (const m of modules) need(`mod_${m}`, [`${APACHE_MODULES}/mod_${m}.so`], m === 'fcgid' ? 'Debian: libapache2-mod-fcgid' : 'Debian: apache2');
  const load = ['mpm_event', 'authz_core', ...modules]
    .map((m) => `LoadModule ${m}_module ${APACHE_MODULES}/mod_${m}.so`).join('\n');
  const conf = `ServerRoot ${dir}
ServerName 127.0.0.1
${load}
${runAs()}PidFile ${dir}/httpd.pid
DefaultRuntimeDir ${dir}/run
Mutex file:${dir}/run default
ErrorLog ${dir}/error.log
LogLevel info
StartServers 1
ServerLimit 2
ThreadsPerChild 25
MaxRequestWorkers 50
MinSpareThreads 5
MaxSpareThreads 50
${extra}
Include ${siteFile}
`;
  fs.mkdirSync(path.join(dir, 'run'), { recursive: true });
  const file = path.join(dir, 'httpd.conf');
  fs.writeFileSync(file, conf);
  return file;
}

function stopper(p) {
  return async () => {
    if (p.exitCode === null && !p.signalCode) {
      p.kill('SIGTERM');
      await new Promise((r) => {
        const t = setTimeout(() => { p.kill('SIGKILL'); r(); }, 10000);
        p.once('exit', () => { clearTimeout(t); r(); });
      });
    }
  };
}

// Resolves once the server answers HTTP; fails at once, with its logs, if it exits first.
async function serving(url, what, p) {
  let exited;
  const gone = new Promise((resolve) => { exited = () => resolve(); p.once('exit', exited); });
  const up = waitFor(async () => (await fetch(url + '/', { method: 'HEAD' })).status > 0, what, 15000);
  try {
    await Promise.race([up, gone.then(() => { throw new Error(`${what}: exited ${p.exitCode ?? p.signalCode}`); })]);
  } catch (e) {
    const log = (f) => (fs.existsSync(f) ? fs.readFileSync(f, 'utf8').slice(-2000) : '');
    p.kill('SIGKILL');
    throw new Error(`${e.message}\n${log(p.logFile)}\n${log(path.join(path.dirname(p.logFile), 'error.log'))}`);
  } finally {
    p.off('exit', exited);
  }
}

async function startApache(dir, conf, url, what) {
  const p = startProcess(apacheBinary(), ['-d', dir, '-f', conf, '-DFOREGROUND'], {}, path.join(dir, 'apache.log'));
  await serving(url, what, p);
  return p;
}

// Apache with mod_proxy_fcgi in front of a pool already listening on the unix socket given.
// The pool's socket and the directories above it must be reachable by www-data (see openToWebServer).
export async function startApacheProxyFcgi(dir, port, socket, siteText) {
  const site = (siteText ?? fs.readFileSync(path.join(ROOT, 'deploy/apache-proxy-fcgi.conf'), 'utf8'))
    .replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`)
    .replaceAll('/run/ollama-fcgi/fcgi.sock', socket);
  const siteFile = path.join(dir, 'apache-proxy-fcgi.conf');
  fs.writeFileSync(siteFile, site);
  openToWebServer(dir);
  const conf = apacheConfig(dir, ['proxy', 'proxy_fcgi', 'env'], siteFile);
  const url = `http://127.0.0.1:${port}`;
  const p = await startApache(dir, conf, url, `Apache (mod_proxy_fcgi) on ${port}`);
  return { name: 'apache-proxy-fcgi', url, proc: p, errorLog: path.join(dir, 'error.log'), stop: stopper(p) };
}

// Apache with mod_fcgid starting the program itself from a document root laid out as a shared-hosting user
// would: the program as ollama-fcgi.fcgi beside the shipped .htaccess. opts.env: settings, passed with
// FcgidInitialEnv as the host would; opts.program: another executable to upload instead of build/ollama-fcgi;
// opts.hostText / opts.htaccessText: replace the shipped files; opts.serverText: more server-wide directives.
export async function startApacheFcgid(dir, port, opts = {}) {
  const docroot = path.join(dir, 'www');
  fs.mkdirSync(docroot, { recursive: true });
  openToWebServer(dir);
  openToWebServer(docroot);
  const program = path.join(docroot, 'ollama-fcgi.fcgi');
  fs.copyFileSync(opts.program ?? BIN, program);
  fs.chmodSync(program, 0o755);
  const htaccess = (opts.htaccessText ?? fs.readFileSync(path.join(ROOT, 'deploy/apache-fcgid.htaccess'), 'utf8'))
    .replaceAll('/var/www/ollama-fcgi', docroot);
  fs.writeFileSync(path.join(docroot, '.htaccess'), htaccess);
  const env = { ...opts.env };
  const ollama = env.OLLAMA_BASE_URL ?? 'http://localhost:11434';
  delete env.OLLAMA_BASE_URL;
  const more = Object.entries(env).map(([k, v]) => `    FcgidInitialEnv ${k} ${v}\n`).join('');
  const site = (opts.hostText ?? fs.readFileSync(path.join(ROOT, 'deploy/apache-fcgid.conf'), 'utf8'))
    .replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`)
    .replaceAll('/var/www/ollama-fcgi', docroot)
    .replace(/^(\s*)FcgidInitialEnv OLLAMA_BASE_URL \S+\n/m, (_, ind) => `${ind}FcgidInitialEnv OLLAMA_BASE_URL ${ollama}\n${more}`);
  const siteFile = path.join(dir, 'apache-fcgid.conf');
  fs.writeFileSync(siteFile, site);
  // Where mod_fcgid keeps its sockets and process table; it makes the socket directory www-data's own.
  const conf = apacheConfig(dir, ['fcgid', 'rewrite', 'mime'], siteFile,
    `TypesConfig /etc/mime.types\nFcgidIPCDir ${dir}/fcgid-sock\nFcgidProcessTableFile ${dir}/fcgid-shm\n${opts.serverText ?? ''}`);
  const url = `http://127.0.0.1:${port}`;
  const p = await startApache(dir, conf, url, `Apache (mod_fcgid) on ${port}`);
  return { name: 'apache-fcgid', url, proc: p, docroot, errorLog: path.join(dir, 'error.log'), stop: stopper(p) };
}

// Caddy with the shipped site block, reverse_proxy over the fastcgi transport to the pool's unix socket.
// Its home, configuration and data stay in dir; the admin API is off (nothing reloads it).
export async function startCaddy(dir, port, socket, siteText) {
  const site = (siteText ?? fs.readFileSync(path.join(ROOT, 'deploy/Caddyfile'), 'utf8'))
    .replaceAll('127.0.0.1:8080', `127.0.0.1:${port}`)
    .replaceAll('/run/ollama-fcgi/fcgi.sock', socket);
  const file = path.join(dir, 'Caddyfile');
  fs.writeFileSync(file, `{\n\tadmin off\n}\n\n${site}`);
  const home = path.join(dir, 'caddy-home');
  fs.mkdirSync(home, { recursive: true });
  const env = { ...process.env, HOME: home, XDG_CONFIG_HOME: path.join(home, 'config'), XDG_DATA_HOME: path.join(home, 'data') };
  const caddy = need('Caddy', ['/usr/bin/caddy', '/usr/local/bin/caddy'], 'Debian: caddy');
  const p = startProcess(caddy, ['run', '--config', file, '--adapter', 'caddyfile'], { env, cwd: dir },
    path.join(dir, 'caddy.log'));
  const url = `http://127.0.0.1:${port}`;
  await serving(url, `Caddy on ${port}`, p);
  return { name: 'caddy', url, proc: p, stop: stopper(p) };
}
