"""The on-disk record of a lab, so that any process can find and tear down what a lab made.

Every lab resource is findable by the ``nql-`` prefix or lives in the lab's state directory:
namespaces ``nql-<labid>-<host>``, overlay directories ``/etc/netns/nql-<labid>-<host>``, and
``/run/nqrust-lab/<labid>/`` with ``state.json`` (root only: it holds PostgreSQL passwords),
the lab's files (``tmp/``: configs, leases, logs) and its PostgreSQL directories (``pg-*``).
``state.json`` lists all of them plus the processes the lab started. The record is written
*before* a resource is made and removed *after* it is gone.

Temporary files live under /run rather than /tmp: /run is private to a (virtual) machine,
while /tmp may be shared with the host (the kernel lane's qemu guest sees the host's /tmp).
The directories are mode 0711 so that the ``postgres`` user reaches its own ``pg-*`` directory.
"""

import contextlib
import errno
import fcntl
import json
import os
import re
import secrets
import time

from lab.errors import LabError
from lab import processes

PREFIX = 'nql-'
STATE_ROOT = '/run/nqrust-lab'
ETC_NETNS = '/etc/netns'
RUN_NETNS = '/run/netns'
TMP_ROOT = '/tmp'  # labs keep their files in their state dir; /tmp/nql-<labid>-* is swept too
SESSION_ENV = 'NQRUST_LAB_SESSION'
MARKER_ENV = processes.MARKER_ENV

LAB_ID_RE = re.compile(r'^[A-Za-z0-9]{1,24}$')
HOST_NAME_RE = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$')


def new_lab_id():
    """A random short hex id."""
    return secrets.token_hex(4)


def check_lab_id(lab_id):
    if not isinstance(lab_id, str) or not LAB_ID_RE.match(lab_id):
        raise LabError('invalid lab id %r: use 1-24 letters or digits (no "-")' % (lab_id,))
    return lab_id


def check_host_name(name):
    if not isinstance(name, str) or not HOST_NAME_RE.match(name):
        raise LabError('invalid host name %r: use 1-40 letters, digits, ".", "_" or "-", starting with a letter or digit' % (name,))
    return name


def netns_name(lab_id, host):
    return '%s%s-%s' % (PREFIX, lab_id, host)


def lab_id_of(name):
    """The lab id in a prefixed name (``nql-<id>-...`` or ``nql-<id>``); None when not prefixed."""
    base = os.path.basename(name)
    if not base.startswith(PREFIX):
        return None
    rest = base[len(PREFIX):]
    return rest.split('-', 1)[0] or None


def state_dir(lab_id):
    return os.path.join(STATE_ROOT, lab_id)


def state_file(lab_id):
    return os.path.join(state_dir(lab_id), 'state.json')


def empty_state(lab_id, kind='lab'):
    me = os.getpid()
    return {
        'version': 1,
        'lab_id': lab_id,
        'kind': kind,
        'created': time.time(),
        'owner_pid': me,
        'owner_start': processes.start_time(me),
        'session': os.environ.get(SESSION_ENV),
        'tmpdir': None,
        'namespaces': [],
        'etc_netns': [],
        'hosts': {},
        'links': [],
        'processes': [],
        'postgres': [],
    }


def load(lab_id):
    """The state of a lab, or None when the lab has no (readable) record."""
    try:
        with open(state_file(lab_id), encoding='utf-8') as handle:
            data = json.load(handle)
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def recorded_lab_ids():
    try:
        names = os.listdir(STATE_ROOT)
    except OSError:
        return []
    return sorted(name for name in names if LAB_ID_RE.match(name))


def makedirs(path, mode=0o755):
    """mkdir -p that tolerates a concurrent rmdir of an (empty) parent by another lab's teardown."""
    for attempt in range(5):
        try:
            os.makedirs(path, mode=mode, exist_ok=True)
            return
        except FileNotFoundError:
            if attempt == 4:
                raise


def remove_empty_dir(path):
    """rmdir when empty; a directory another lab still uses stays."""
    try:
        os.rmdir(path)
    except OSError as exc:
        if exc.errno not in (errno.ENOENT, errno.ENOTEMPTY, errno.EEXIST, errno.EBUSY):
            raise


class LabState:
    """Read-modify-write access to ``/run/nqrust-lab/<id>/state.json`` under an flock."""

    def __init__(self, lab_id):
        self.lab_id = check_lab_id(lab_id)
        self.dir = state_dir(lab_id)
        self.path = state_file(lab_id)

    def exists(self):
        return os.path.exists(self.path)

    def create(self, kind='lab'):
        """Create the record, or re-open an existing one; returns True when it was new.

        The owner (pid) and the pytest session recorded at creation stay: re-opening a lab
        (``python -m lab info``, ``up`` again) does not make it the opener's.
        """
        for directory in (STATE_ROOT, self.dir):
            makedirs(directory, 0o711)
            os.chmod(directory, 0o711)
        with self.update() as data:
            new = not data.get('lab_id')
            if new:
                data.clear()
                data.update(empty_state(self.lab_id, kind))
        return new

    def read(self):
        return load(self.lab_id) or {}

    @contextlib.contextmanager
    def update(self):
        """Yield the state dict; written back atomically when the block ends without error."""
        makedirs(self.dir, 0o711)
        with os.fdopen(os.open(os.path.join(self.dir, 'lock'), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600), 'r+') as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            data = self.read()
            yield data
            tmp = '%s.%d.tmp' % (self.path, os.getpid())
            with os.fdopen(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600), 'w', encoding='utf-8') as handle:
                json.dump(data, handle, indent=2, sort_keys=True)
                handle.write('\n')
            os.replace(tmp, self.path)

    def append(self, key, value):
        with self.update() as data:
            items = data.setdefault(key, [])
            if value not in items:
                items.append(value)

    def discard(self, key, value):
        with self.update() as data:
            items = data.setdefault(key, [])
            if value in items:
                items.remove(value)
