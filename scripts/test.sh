#!/bin/sh
# Install everything the tests need (system packages too) and run the whole suite.
set -eu
cd "$(dirname "$0")/.."
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else "$@"; fi; }
need=""
for pair in setfacl:acl setfattr:attr sha256sum:coreutils setpriv:util-linux ionice:util-linux systemd-analyze:systemd; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || need="$need ${pair#*:}"
done
# Storage backend tests: OpenSSH server (sftp), rclone (rclone: and rest:).
[ -x /usr/sbin/sshd ] || need="$need openssh-server"
# MariaDB for the database dump tests (tests/sources/databases): a private mariadbd per test.
[ -x /usr/sbin/mariadbd ] || need="$need mariadb-server"
command -v ssh-keygen >/dev/null 2>&1 || need="$need openssh-client"
command -v rclone >/dev/null 2>&1 || need="$need rclone"
# FUSE for the `amber mount` tests (libfuse3 and fusermount3).
command -v fusermount3 >/dev/null 2>&1 || need="$need fuse3"
# Btrfs filesystems on loop devices for the snapshot and rollback tests (tests/btrfs_fs.py).
command -v mkfs.btrfs >/dev/null 2>&1 || need="$need btrfs-progs"
# Chromium for the dashboard browser test (tests/web/test_browser.py).
command -v chromium >/dev/null 2>&1 || need="$need chromium"
# Pango for WeasyPrint (PDF reports, amber[pdf]) and pdftotext to read the PDFs back.
dpkg -s libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core >/dev/null 2>&1 \
    || need="$need libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 fonts-dejavu-core"
command -v pdftotext >/dev/null 2>&1 || need="$need poppler-utils"
# PostgreSQL for the full-restore drill test; Debian keeps its binaries off PATH.
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need="$need postgresql"
if [ -n "$need" ]; then
    as_root apt-get update -qq
    as_root apt-get install -y -qq $need >/dev/null
fi
sh scripts/bootstrap.sh
.venv/bin/python -m pip install -q -e ".[test]"
export PATH="$PWD/.venv/bin:$PATH"
lint-imports
ruff check src tests bench
mypy
python -m pytest -n 2 -q "$@"
