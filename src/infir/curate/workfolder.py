"""The curation work folder: a local path, or an fsspec URL (s3://, gs://, ...) every node reaches.

Tasks and driver steps read and write plain local files: numpy memory maps, appends, renames of
`.tmp` files. They all work under `WorkFolder.local`, which is the work folder itself when it is
local. A remote work folder is mirrored there, in a node-local cache, at fixed points only:

- `publish`: a task uploads the files it wrote before it returns. Datatrove writes the task's
  completion file (under the work folder's `logs/`) only after that, and a driver step saves its
  report last, so whoever reads a file reads it after its writer's marker: put, then marker. A
  killed task leaves at most files that its rerun overwrites with the same content.
- `fetch`: a task downloads whole the files it reads at random (memory maps stay local), once per
  node: the cache is keyed by the work folder and the run's fingerprint, and a cached file is
  used when its size matches the remote one.
- `read_range`: slices of the sorted runs (a pair task's key range) are read where they lie,
  without fetching the runs.

Whether a step is done is always asked of the work folder itself, so a killed run resumes from
any node. Endpoints and credentials come from the filesystem's own configuration (for s3://,
botocore's: AWS_ENDPOINT_URL_S3, AWS_ACCESS_KEY_ID, ~/.aws/config; or fsspec's FSSPEC_S3_* variables),
which every node of a cluster needs.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import uuid
from pathlib import Path

import numpy as np


def _is_local_url(url: str) -> bool:
    from fsspec.core import split_protocol

    return split_protocol(url)[0] in (None, "file", "local")


def lock_folder(url: str) -> Path:
    """The local folder that locks work folder `url` against a second run: the folder itself when
    local; for a URL, one per URL under the temporary folder, which excludes a second run on this
    machine only (object stores have no locks)."""
    from fsspec.core import split_protocol

    if _is_local_url(url):
        return Path(split_protocol(url)[1])
    return Path(tempfile.gettempdir()) / "infir-curate-locks" / hashlib.sha256(url.encode()).hexdigest()[:16]


class WorkFolder:
    """See the module doc. Picklable: the filesystem is opened lazily in each process (fsspec's
    async filesystems are not fork-safe)."""

    def __init__(self, url: str, fingerprint: str = "", cache_dir: str | None = None):
        from fsspec.core import split_protocol

        url = str(url).rstrip("/")
        self.remote = not _is_local_url(url)
        self.url = url if self.remote else split_protocol(url)[1]
        self.cache_dir = cache_dir
        self._key = hashlib.sha256(f"{url}\n{fingerprint}".encode()).hexdigest()[:16]
        self._fs = None
        self._pid = None

    @property
    def local(self) -> Path:
        """Where this process reads and writes the files: the folder itself when local, else the
        node's cache, found on the node: `cache_dir`, else its $INFIR_CURATE_CACHE, else its
        temporary folder."""
        if not self.remote:
            return Path(self.url)
        root = (
            self.cache_dir
            or os.environ.get("INFIR_CURATE_CACHE")
            or Path(tempfile.gettempdir()) / "infir-curate-cache"
        )
        return Path(root) / self._key

    def __getstate__(self):
        return {**self.__dict__, "_fs": None, "_pid": None}

    @property
    def fs(self):
        if self._fs is None or self._pid != os.getpid():
            from fsspec.core import url_to_fs

            self._fs, self._root = url_to_fs(self.url)
            self._pid = os.getpid()
        return self._fs

    def _remote(self, rel: str) -> str:
        self.fs  # noqa: B018 - sets _root
        return f"{self._root}/{rel}" if rel else self._root

    def __truediv__(self, rel: str) -> Path:
        return self.local / rel

    def url_of(self, rel: str) -> str:
        """`rel` as datatrove takes it (its logging folders): a path or a URL."""
        return f"{self.url}/{rel}"

    # -- questions asked of the work folder itself -------------------------------------------
    def exists(self, rel: str) -> bool:
        return self.fs.exists(self._remote(rel)) if self.remote else (self.local / rel).exists()

    def sizes(self, folder: str, suffix: str = "") -> dict[str, int]:
        """{name: size in bytes} of the files of `folder` whose name ends with `suffix`."""
        if not self.remote:
            path = self.local / folder
            return {p.name: p.stat().st_size for p in path.glob(f"*{suffix}")} if path.is_dir() else {}
        try:
            entries = self.fs.ls(self._remote(folder), detail=True, refresh=True)
        except FileNotFoundError:
            return {}
        return {
            e["name"].rsplit("/", 1)[-1]: int(e["size"])
            for e in entries
            if e.get("type") == "file" and e["name"].endswith(suffix)
        }

    def read_json(self, rel: str):
        if not self.remote:
            return json.loads((self.local / rel).read_text())
        return json.loads(self.fs.cat_file(self._remote(rel)))

    def read_text(self, rel: str) -> str | None:
        """The file's text; None when it does not exist."""
        try:
            if not self.remote:
                return (self.local / rel).read_text()
            return self.fs.cat_file(self._remote(rel)).decode()
        except FileNotFoundError:
            return None

    def read_range(self, rel: str, dtype: np.dtype, offset: int, count: int) -> np.ndarray:
        """`count` items of `dtype` from item `offset` of file `rel`, read in place."""
        dtype = np.dtype(dtype)
        if count <= 0:
            return np.zeros(0, dtype=dtype)
        if not self.remote:
            return np.fromfile(self.local / rel, dtype=dtype, count=count, offset=offset * dtype.itemsize)
        start = offset * dtype.itemsize
        data = self.fs.cat_file(self._remote(rel), start=start, end=start + count * dtype.itemsize)
        return np.frombuffer(data, dtype=dtype)  # read-only, as callers only concatenate or index it

    # -- moving files between the node's cache and the work folder --------------------------
    def fetch(self, rel: str, missing_ok: bool = False) -> Path | None:
        """The local path of `rel`, downloaded into this node's cache unless a copy of the same
        size is there; None (with `missing_ok`) when the work folder has no such file."""
        path = self.local / rel
        if not self.remote:
            return path if (path.exists() or not missing_ok) else None
        try:
            size = int(self.fs.info(self._remote(rel))["size"])
        except FileNotFoundError:
            if missing_ok:
                return None
            raise FileNotFoundError(f"{self.url}/{rel}: not in the curation work folder") from None
        if path.exists() and path.stat().st_size == size:
            return path
        path.parent.mkdir(parents=True, exist_ok=True)
        # a unique name, renamed into place: tasks of one node may fetch the same file at once
        tmp = path.with_name(f"{path.name}.{uuid.uuid4().hex}.part")
        try:
            self.fs.get_file(self._remote(rel), str(tmp))
            tmp.replace(path)
        finally:
            tmp.unlink(missing_ok=True)
        return path

    def publish(self, *paths) -> None:
        """Uploads local files (paths under `local`, or relative names) to the work folder."""
        if not self.remote:
            return
        for p in paths:
            p = Path(p)
            rel = p.relative_to(self.local).as_posix() if p.is_absolute() else p.as_posix()
            self.fs.put_file(str(self.local / rel), self._remote(rel))

    def write_text(self, rel: str, text: str) -> None:
        """Writes a small file locally (atomically) and publishes it."""
        path = self.local / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(text)
        tmp.replace(path)
        self.publish(path)

    def clear(self) -> None:
        """Removes the work folder (and this node's cache of it)."""
        if self.remote:
            if self.fs.exists(self._remote("")):
                self.fs.rm(self._remote(""), recursive=True)
                self.fs.invalidate_cache()
        shutil.rmtree(self.local, ignore_errors=True)

    def drop_cache(self) -> None:
        """Frees this node's cache of a remote work folder (the work folder keeps everything)."""
        if self.remote:
            shutil.rmtree(self.local, ignore_errors=True)
