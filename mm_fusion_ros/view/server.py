"""The view server: a Rerun data proxy (gRPC) and the web viewer page, on one bind address.

Data: the `rerun` executable shipped in the rerun-sdk wheel, `rerun --serve-grpc --bind ADDR`,
run as a child process (the Python API's `serve_grpc` / `serve_web_viewer` listen on every
interface, with no option to bind elsewhere). The child gets its own Rerun config directory
with usage analytics off, so it contacts nothing outside.

Page: the web viewer (wasm) is the one built into that executable: at start it is copied once
from a short-lived `rerun --serve-web` on loopback, then served by a small HTTP server here
with a Content-Security-Policy that lets the page load and connect only to this server. The
viewer as shipped also asks the internet for web fonts, an update check, an examples list and
usage analytics; the policy makes the browser refuse those, so opening the view sends nothing
anywhere else (measured with headless Chromium: test/test_view.py).
"""

from dataclasses import dataclass
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
import json
import os
from pathlib import Path
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any
from urllib.parse import quote, urlsplit
from urllib.request import urlopen
import weakref

from mm_fusion_ros.errors import UserInputError
from mm_fusion_ros.view import require_rerun
from mm_fusion_ros.view.options import DEFAULT_ADDRESS, DEFAULT_PORT, is_loopback

APPLICATION_ID = 'mm_fusion_ros'
# The files of the web viewer page (what the page requests; measured with Chromium).
VIEWER_FILES = {
    'index.html': ('/', 'text/html; charset=utf-8'),
    're_viewer.js': ('/re_viewer.js', 'text/javascript'),
    're_viewer_bg.wasm': ('/re_viewer_bg.wasm', 'application/wasm'),
    'sw.js': ('/sw.js', 'text/javascript'),
    'favicon.ico': ('/favicon.ico', 'image/x-icon'),
}


class ViewServerError(UserInputError, RuntimeError):
    """The view server cannot start (port taken, address not on this machine, ...)."""


@dataclass(frozen=True)
class ServerConfig:
    address: str = DEFAULT_ADDRESS  # bind address of both ports
    port: int = DEFAULT_PORT  # web viewer; gRPC on port + 1 unless grpc_port is set
    grpc_port: int | None = None
    memory_limit: str = '1GiB'  # log data buffered for viewers that connect late
    startup_timeout: float = 20.0  # [s]

    @property
    def data_port(self) -> int:
        return self.port + 1 if self.grpc_port is None else self.grpc_port


def rerun_executable() -> str:
    """The `rerun` binary of the installed wheel (RERUN_CLI_PATH overrides, as rerun's does)."""
    if 'RERUN_CLI_PATH' in os.environ:
        return os.environ['RERUN_CLI_PATH']
    require_rerun()
    import rerun_cli

    return str(Path(rerun_cli.__file__).with_name('rerun'))


def analytics_off_env(directory: Path) -> dict[str, str]:
    """Environment for a `rerun` child: its own Rerun config with usage analytics disabled."""
    config, data = directory / 'config', directory / 'data'
    (config / 'rerun').mkdir(parents=True, exist_ok=True)
    path = config / 'rerun' / 'analytics.json'
    path.write_text(json.dumps({
        'analytics_enabled': False, 'analytics_id': 'mm_fusion_ros-view', 'metadata': {},
        'config_file_path': str(path), 'data_dir_path': str(data / 'rerun' / 'analytics')}))
    return dict(os.environ, XDG_CONFIG_HOME=str(config), XDG_DATA_HOME=str(data),
                RUST_LOG=os.environ.get('RUST_LOG', 'warn'))


def _client_host(address: str) -> str:
    """Where this process (and a browser on this machine) reaches a server on `address`."""
    if address in ('0.0.0.0', ''):
        return '127.0.0.1'
    if address == '::':
        return '::1'
    return address


def _url_host(host: str) -> str:
    return f'[{host}]' if ':' in host else host


def _family(host: str) -> int:
    return socket.AF_INET6 if ':' in host else socket.AF_INET


def _bind_host(address: str) -> str:
    return '127.0.0.1' if address == 'localhost' else address


def _check_free(address: str, port: int) -> None:
    """Refuse early, naming the options, when the address or a port cannot be bound."""
    host = _bind_host(address)
    with socket.socket(_family(host), socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise ViewServerError(
                f'cannot listen on {address} port {port} ({exc.strerror}); choose another'
                ' --view-port or --view-address') from exc


def _free_loopback_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _listening(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def _start(command: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    # A session of its own: Ctrl-C in the terminal reaches this process, which flushes the last
    # data and then stops the server (weakref.finalize also runs at interpreter exit).
    with open(log_path, 'ab') as log:
        return subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, env=env, start_new_session=True)


def _wait_listening(process: subprocess.Popen, host: str, ports: list[int], timeout: float,
                    log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            log = log_path.read_text(errors='replace').strip()[-400:]
            raise ViewServerError(f'the view server exited with code {process.returncode}: {log}')
        if all(_listening(host, p) for p in ports):
            return
        time.sleep(0.05)
    raise ViewServerError(f'the view server did not listen within {timeout} s')


def _stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def copy_viewer(directory: Path, env: dict[str, str], timeout: float = 20.0) -> None:
    """The web viewer built into `rerun`: copied from a short-lived loopback server."""
    data_port, web_port = _free_loopback_port(), _free_loopback_port()
    process = _start([rerun_executable(), '--serve-web', '--bind', '127.0.0.1', '--port',
                      str(data_port), '--web-viewer-port', str(web_port)],
                     directory / 'copy.log', env)
    try:
        _wait_listening(process, '127.0.0.1', [web_port], timeout, directory / 'copy.log')
        for name, (path, _) in VIEWER_FILES.items():
            with urlopen(f'http://127.0.0.1:{web_port}{path}', timeout=timeout) as response:
                with open(directory / name, 'wb') as out:
                    shutil.copyfileobj(response, out)
    finally:
        _stop_process(process)


def content_security_policy(address: str, data_port: int) -> str:
    """The page may load from itself and connect to itself and the data port, nothing else."""
    host = '*' if address in ('0.0.0.0', '::', '') else _url_host(address)
    data = f'http://{host}:{data_port}'
    if address in ('127.0.0.1', 'localhost'):
        data = f'http://127.0.0.1:{data_port} http://localhost:{data_port}'
    return '; '.join([
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'wasm-unsafe-eval'",  # the page's inline loader
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        f"connect-src 'self' {data}",
        "frame-ancestors 'none'",
        "form-action 'none'",
        "base-uri 'none'",
    ])


class _PageHandler(BaseHTTPRequestHandler):
    server_version = 'mm_fusion_ros-view'

    def __init__(self, *args, directory: Path, policy: str, **kwargs) -> None:
        self.directory, self.policy = directory, policy
        super().__init__(*args, **kwargs)

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        path = urlsplit(self.path).path
        name = 'index.html' if path in ('/', '/index.html') else path.lstrip('/')
        if name not in VIEWER_FILES:
            self.send_error(404)
            return
        file = self.directory / name
        self.send_response(200)
        self.send_header('Content-Type', VIEWER_FILES[name][1])
        self.send_header('Content-Length', str(file.stat().st_size))
        self.send_header('Content-Security-Policy', self.policy)
        self.send_header('Cache-Control', 'no-cache')
        self.end_headers()
        with open(file, 'rb') as f:
            shutil.copyfileobj(f, self.wfile)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        pass


class _PageServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: str, port: int, handler) -> None:
        host = _bind_host(address)
        self.address_family = _family(host)
        super().__init__((host, port), handler)


def _cleanup(process: subprocess.Popen, page: _PageServer | None,
             directory: tempfile.TemporaryDirectory) -> None:
    _stop_process(process)
    if page is not None:
        page.shutdown()
        page.server_close()
    directory.cleanup()


class ViewServer:
    """Starts the data proxy and the viewer page, connects a recording; `close()` stops all."""

    def __init__(self, config: ServerConfig | None = None, recording_id: str | None = None):
        self.config = c = config or ServerConfig()
        rr = require_rerun()
        for port in (c.port, c.data_port):
            _check_free(c.address, port)
        self._dir = tempfile.TemporaryDirectory(prefix='mm_fusion_view_')
        work = Path(self._dir.name)
        env = analytics_off_env(work / 'home')
        self._log_path = work / 'server.log'
        self.process = _start(
            [rerun_executable(), '--serve-grpc', '--bind', _bind_host(c.address), '--port',
             str(c.data_port),
             '--server-memory-limit', c.memory_limit, *self._cors_args()], self._log_path, env)
        self._page: _PageServer | None = None
        self._finalizer = weakref.finalize(self, _cleanup, self.process, None, self._dir)
        self._host = _client_host(c.address)
        try:
            _wait_listening(self.process, self._host, [c.data_port], c.startup_timeout,
                            self._log_path)
            assets = work / 'viewer'
            assets.mkdir()
            copy_viewer(assets, env, c.startup_timeout)
            handler = partial(_PageHandler, directory=assets,
                              policy=content_security_policy(c.address, c.data_port))
            self._page = _PageServer(c.address, c.port, handler)
        except OSError as exc:
            self._finalizer()
            raise ViewServerError(f'the view server cannot start: {exc}') from exc
        except BaseException:
            self._finalizer()
            raise
        self._finalizer.detach()
        self._finalizer = weakref.finalize(self, _cleanup, self.process, self._page, self._dir)
        threading.Thread(target=self._page.serve_forever, name='view_page', daemon=True).start()
        self.recording: Any = rr.RecordingStream(APPLICATION_ID, recording_id=recording_id)
        self.recording.connect_grpc(self.data_url)

    def _cors_args(self) -> list[str]:
        """Origins whose pages may read the data port, besides localhost (rerun's default).

        When other machines reach the server: its own viewer page, by the address they use.
        """
        c = self.config
        if is_loopback(c.address):
            return []
        host = '*' if c.address in ('0.0.0.0', '::', '') else _url_host(c.address)
        return ['--cors-allow-origin', f'http://{host}:{c.port}']

    @property
    def data_url(self) -> str:
        return f'rerun+http://{_url_host(self._host)}:{self.config.data_port}/proxy'

    @property
    def url(self) -> str:
        """The web viewer, opened on this server's data."""
        return (f'http://{_url_host(self._host)}:{self.config.port}/'
                f'?url={quote(self.data_url, safe="")}')

    def server_log(self) -> str:
        try:
            return self._log_path.read_text(errors='replace')
        except OSError:
            return ''

    def close(self) -> None:
        if not self._finalizer.alive:
            return
        try:
            self.recording.flush(timeout_sec=2.0)
        except Exception as exc:  # noqa: BLE001 - a dead server must not stop the shutdown
            print(f'view: flushing the last data failed: {exc}', file=sys.stderr)
        self.recording.disconnect()
        self._finalizer()

    def __enter__(self) -> 'ViewServer':
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
