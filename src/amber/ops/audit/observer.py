"""The audit log as an observer of operations: one record per finished operation.

Every front end puts one in its operation context (``services.context``); the
CLI records each command, `amber run` and the daemon each job. A config file
that changed since the last record is recorded first (``config-change``).
"""

from __future__ import annotations

import os
from collections.abc import Collection

from amber.ops.audit import log as audit_log
from amber.ops.config.model import default_config_path
from amber.services.context import OperationRecord


class AuditObserver:
    def __init__(self, config_path: str | None = None, skip: Collection[str] = ()) -> None:
        self.config_path = config_path  # --config / AMBER_CONFIG; None: the default location
        self.skip = frozenset(skip)  # commands that only look (audit show, config check ...)

    def operation_finished(self, record: OperationRecord) -> None:
        """Append ``record`` (raises AmberError when the log cannot be written)."""
        if not record.command or record.command in self.skip or record.exit_code is None:
            return
        log = audit_log.AuditLog(audit_log.resolve_path(self.config_path))
        config_file = self.config_path or default_config_path()
        if os.path.exists(config_file):
            audit_log.record_config_change(log, config_file, audit_log.file_sha256(config_file))
        fields = audit_log.operation_fields(record.command, record.args, record.exit_code, record.error,
                                            record.repository)  # fmt: skip
        if record.details:
            fields["details"] = record.details
        log.append(fields)
