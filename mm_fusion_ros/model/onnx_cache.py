"""On-disk cache of a checkpoint's exported ONNX graphs, so a warm start skips the export.

Exporting the model to ONNX costs 1.4-2.8 s on 2 cores (the exporter imports onnx, traces the
model and folds constants), on every start of a node or an offline evaluation; loading the
checkpoint costs the torch import on top (1.4-3.5 s). With the graphs cached, a warm start
reads the ONNX bytes and the checkpoint's validated metadata from here, and the
onnxruntime backend needs neither torch nor the checkpoint's weights.

Layout, under `cache_root()` (`$MM_FUSION_CACHE_DIR`, else `$XDG_CACHE_HOME/mm_fusion_ros`,
else `~/.cache/mm_fusion_ros`):

    onnx/<sha256 of the checkpoint file>/info-<code key>.json
        {"checksum": sha256 of the canonical JSON of "info", "info": the checkpoint's
         payload without the weights, as `load_checkpoint` returned it (validated); the code
         key hashes the source of the checkpoint reader and config (`INFO_SOURCES`), so a
         reader that validates more reads the checkpoint again}
    onnx/<sha256 of the checkpoint file>/<modality>-<settings key>-<sha256 of the file>.onnx

The settings key hashes what else shapes the exported graph: the modality, the opset and
exporter settings, the torch and onnx versions, and the source of the model and export code
(`GRAPH_SOURCES`), so a code or version change exports again instead of reading a stale graph.
Each graph file names its own content hash and every file is written to a temporary name and
renamed (atomic), so concurrent writers never leave a half-written entry and a damaged one is
recognised: it is then removed with one warning and exported again, never a crash. A cache
directory that cannot be written is a warning too (the export is then used from memory).
The entries of the `MAX_CHECKPOINTS` checkpoints used last are kept, older ones are removed
when a new checkpoint is stored (a few MB each).
"""

import functools
import hashlib
import json
import logging
import os
from pathlib import Path
import shutil
import tempfile
from typing import Any

logger = logging.getLogger(__name__)

ENV_VAR = 'MM_FUSION_CACHE_DIR'
# What the exporter is asked for (export.export_onnx); part of every graph's key.
EXPORT_SETTINGS: dict[str, Any] = {
    'exporter': 'torchscript', 'dynamo': False, 'do_constant_folding': True,
    'dynamic_axes': 'batch', 'example_batch': 2,
}
DEFAULT_OPSET = 17
MAX_CHECKPOINTS = 8  # checkpoints whose entries are kept (least recently used go first)
# Modules whose code decides the exported graph, and the validated metadata (model.* names).
GRAPH_SOURCES = ('config', 'export', 'fusion', 'image_branch', 'layers', 'preprocess',
                 'radar_encoder')
INFO_SOURCES = ('checkpoint', 'config')
_CHUNK = 1 << 20


def cache_root() -> Path:
    """The package's user cache directory (see the module docstring for the order)."""
    override = os.environ.get(ENV_VAR)
    if override:
        return Path(override).expanduser()
    xdg = os.environ.get('XDG_CACHE_HOME')
    base = Path(xdg).expanduser() if xdg else Path.home() / '.cache'
    return base / 'mm_fusion_ros'


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, 'rb') as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


@functools.cache
def _package_version(name: str) -> str:
    """Installed version without importing the package (torch's import costs seconds)."""
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        if name == 'torch':  # a source or distro build without pip metadata
            import torch

            return str(torch.__version__)
        return 'absent'


@functools.cache
def _source_hash(names: tuple[str, ...] = GRAPH_SOURCES) -> str:
    here = Path(__file__).resolve().parent
    digest = hashlib.sha256()
    for name in names:
        digest.update(name.encode())
        digest.update((here / f'{name}.py').read_bytes())
    return digest.hexdigest()


def settings_key(modality: str, opset: int = DEFAULT_OPSET) -> str:
    """Hash of everything but the weights that shapes an exported graph (16 hex digits)."""
    fields = {
        'modality': modality, 'opset': opset, 'export': EXPORT_SETTINGS,
        'torch': _package_version('torch'), 'onnx': _package_version('onnx'),
        'source': _source_hash(),
    }
    text = json.dumps(fields, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _canonical(info: dict[str, Any]) -> str:
    return json.dumps(info, sort_keys=True, allow_nan=True)


class OnnxCache:
    """The cache entries of one checkpoint (by content); see the module docstring."""

    def __init__(self, checkpoint_sha256: str, root: str | Path | None = None) -> None:
        self.checkpoint_sha256 = checkpoint_sha256
        self.root = Path(root) if root is not None else cache_root()
        self.directory = self.root / 'onnx' / checkpoint_sha256
        self._write_warned = False

    @classmethod
    def for_checkpoint(cls, path: str | Path, root: str | Path | None = None) -> 'OnnxCache':
        """Hash the checkpoint file (about 10 ms for the shipped 3.5 MB); OSError if unreadable."""
        return cls(file_sha256(path), root)

    # -- checkpoint metadata ------------------------------------------------------------------
    @property
    def info_path(self) -> Path:
        return self.directory / f'info-{_source_hash(INFO_SOURCES)[:16]}.json'

    def load_info(self) -> dict[str, Any] | None:
        """The stored checkpoint info, or None (absent; damaged: removed with a warning)."""
        path = self.info_path
        try:
            text = path.read_text(encoding='utf-8')
        except OSError as exc:  # absent (a miss), or unusable: then storing it warns once
            if not isinstance(exc, FileNotFoundError):
                logger.debug('cannot read ONNX cache entry %s: %s', path, exc)
            return None
        try:
            data = json.loads(text)
            info = data['info']
            ok = isinstance(info, dict) and data['checksum'] == hashlib.sha256(
                _canonical(info).encode()).hexdigest()
        except (ValueError, KeyError, TypeError):
            ok = False
        if not ok:
            self._discard(path, 'its checksum does not match (damaged)')
            return None
        try:
            os.utime(path)  # recently used: kept by `_prune`
        except OSError:
            pass
        return info

    def discard_info(self, reason: str) -> None:
        """Remove the stored metadata (one the code refuses), with one warning."""
        self._discard(self.info_path, reason)

    def store_info(self, info: dict[str, Any]) -> None:
        try:
            text = _canonical(info)
        except (TypeError, ValueError) as exc:  # metadata JSON cannot hold: no warm start
            logger.debug('checkpoint info not cached: %s', exc)
            return
        checksum = hashlib.sha256(text.encode()).hexdigest()
        body = json.dumps({'checksum': checksum, 'info': json.loads(text)}, sort_keys=True)
        if self._write(self.info_path, body.encode()) is not None:
            self._prune()

    def _prune(self) -> None:
        """Remove the entries of all but the MAX_CHECKPOINTS checkpoints used last."""
        def last_used(directory: Path) -> float:
            try:
                return max((p.stat().st_mtime for p in directory.glob('info-*.json')),
                           default=0.0)
            except OSError:
                return 0.0

        try:
            others = [d for d in (self.root / 'onnx').iterdir()
                      if d.is_dir() and d != self.directory]
        except OSError:
            return
        others.sort(key=last_used, reverse=True)
        for directory in others[MAX_CHECKPOINTS - 1:]:
            shutil.rmtree(directory, ignore_errors=True)

    # -- graphs -------------------------------------------------------------------------------
    def graph_prefix(self, modality: str, opset: int = DEFAULT_OPSET) -> str:
        return f'{modality}-{settings_key(modality, opset)}-'

    def load_graph(self, modality: str, opset: int = DEFAULT_OPSET) -> bytes | None:
        """A stored graph whose bytes match the hash in its name, or None.

        Damaged files (content and name disagree) are removed with a warning each.
        """
        prefix = self.graph_prefix(modality, opset)
        try:
            candidates = sorted(self.directory.glob(prefix + '*.onnx'),
                                key=lambda p: p.stat().st_mtime, reverse=True)
        except OSError:
            return None
        for path in candidates:
            try:
                data = path.read_bytes()
            except OSError as exc:
                logger.warning('cannot read ONNX cache entry %s (%s)', path, exc)
                continue
            if hashlib.sha256(data).hexdigest() == path.stem[len(prefix):]:
                return data
            self._discard(path, 'its content does not match its hash (damaged)')
        return None

    def store_graph(self, modality: str, data: bytes, opset: int = DEFAULT_OPSET) -> Path | None:
        name = f'{self.graph_prefix(modality, opset)}{hashlib.sha256(data).hexdigest()}.onnx'
        return self._write(self.directory / name, data)

    def discard_graph(self, modality: str, reason: str, opset: int = DEFAULT_OPSET) -> None:
        """Remove every stored graph of `modality` (one that onnxruntime refused to load)."""
        for path in self.directory.glob(self.graph_prefix(modality, opset) + '*.onnx'):
            self._discard(path, reason)

    # -- files --------------------------------------------------------------------------------
    def _write(self, path: Path, data: bytes) -> Path | None:
        """Atomic write (temporary file in the same directory, then rename)."""
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=path.parent, prefix='.tmp-', suffix=path.suffix)
            try:
                with os.fdopen(fd, 'wb') as f:
                    f.write(data)
                os.replace(tmp, path)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
        except OSError as exc:
            if not self._write_warned:
                self._write_warned = True
                logger.warning('cannot write the ONNX cache at %s (%s); exporting on every '
                               'start (set %s to a writable directory)', path.parent, exc,
                               ENV_VAR)
            return None
        return path

    def _discard(self, path: Path, reason: str) -> None:
        logger.warning('ONNX cache entry %s is unusable: %s; it is removed and the model is '
                       'exported again', path, reason)
        try:
            path.unlink(missing_ok=True)
        except OSError:
            pass
