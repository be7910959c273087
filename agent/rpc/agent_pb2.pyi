import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ProtocolVersion(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PROTOCOL_VERSION_UNSPECIFIED: _ClassVar[ProtocolVersion]
    PROTOCOL_VERSION_1: _ClassVar[ProtocolVersion]
PROTOCOL_VERSION_UNSPECIFIED: ProtocolVersion
PROTOCOL_VERSION_1: ProtocolVersion

class HostFacts(_message.Message):
    __slots__ = ("hostname", "os", "os_version", "agent_version", "username", "arch")
    HOSTNAME_FIELD_NUMBER: _ClassVar[int]
    OS_FIELD_NUMBER: _ClassVar[int]
    OS_VERSION_FIELD_NUMBER: _ClassVar[int]
    AGENT_VERSION_FIELD_NUMBER: _ClassVar[int]
    USERNAME_FIELD_NUMBER: _ClassVar[int]
    ARCH_FIELD_NUMBER: _ClassVar[int]
    hostname: str
    os: str
    os_version: str
    agent_version: str
    username: str
    arch: str
    def __init__(self, hostname: _Optional[str] = ..., os: _Optional[str] = ..., os_version: _Optional[str] = ..., agent_version: _Optional[str] = ..., username: _Optional[str] = ..., arch: _Optional[str] = ...) -> None: ...

class EnrollRequest(_message.Message):
    __slots__ = ("token", "host", "csr_pem")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    HOST_FIELD_NUMBER: _ClassVar[int]
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    token: str
    host: HostFacts
    csr_pem: bytes
    def __init__(self, token: _Optional[str] = ..., host: _Optional[_Union[HostFacts, _Mapping]] = ..., csr_pem: _Optional[bytes] = ...) -> None: ...

class RepositoryLocation(_message.Message):
    __slots__ = ("url", "endpoint", "region")
    URL_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    REGION_FIELD_NUMBER: _ClassVar[int]
    url: str
    endpoint: str
    region: str
    def __init__(self, url: _Optional[str] = ..., endpoint: _Optional[str] = ..., region: _Optional[str] = ...) -> None: ...

class EnrollResponse(_message.Message):
    __slots__ = ("device_id", "certificate_pem", "ca_certificate_pem", "repository", "repository_keys", "gateway_address", "org", "storage_access")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_FIELD_NUMBER: _ClassVar[int]
    REPOSITORY_KEYS_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ORG_FIELD_NUMBER: _ClassVar[int]
    STORAGE_ACCESS_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    certificate_pem: bytes
    ca_certificate_pem: bytes
    repository: RepositoryLocation
    repository_keys: bytes
    gateway_address: str
    org: str
    storage_access: str
    def __init__(self, device_id: _Optional[str] = ..., certificate_pem: _Optional[bytes] = ..., ca_certificate_pem: _Optional[bytes] = ..., repository: _Optional[_Union[RepositoryLocation, _Mapping]] = ..., repository_keys: _Optional[bytes] = ..., gateway_address: _Optional[str] = ..., org: _Optional[str] = ..., storage_access: _Optional[str] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("host", "policy_revision", "protocol_version", "pending_command_ids", "protocol", "handled_command_ids")
    HOST_FIELD_NUMBER: _ClassVar[int]
    POLICY_REVISION_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_VERSION_FIELD_NUMBER: _ClassVar[int]
    PENDING_COMMAND_IDS_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    HANDLED_COMMAND_IDS_FIELD_NUMBER: _ClassVar[int]
    host: HostFacts
    policy_revision: str
    protocol_version: str
    pending_command_ids: _containers.RepeatedScalarFieldContainer[str]
    protocol: int
    handled_command_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, host: _Optional[_Union[HostFacts, _Mapping]] = ..., policy_revision: _Optional[str] = ..., protocol_version: _Optional[str] = ..., pending_command_ids: _Optional[_Iterable[str]] = ..., protocol: _Optional[int] = ..., handled_command_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("device_id", "gateway_id", "protocol", "heartbeat_interval_seconds", "server_time")
    DEVICE_ID_FIELD_NUMBER: _ClassVar[int]
    GATEWAY_ID_FIELD_NUMBER: _ClassVar[int]
    PROTOCOL_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_INTERVAL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SERVER_TIME_FIELD_NUMBER: _ClassVar[int]
    device_id: str
    gateway_id: str
    protocol: int
    heartbeat_interval_seconds: int
    server_time: _timestamp_pb2.Timestamp
    def __init__(self, device_id: _Optional[str] = ..., gateway_id: _Optional[str] = ..., protocol: _Optional[int] = ..., heartbeat_interval_seconds: _Optional[int] = ..., server_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("at", "policy_revision", "state", "pause_reason", "last_backup_at", "next_backup_at", "current", "outbox_size")
    AT_FIELD_NUMBER: _ClassVar[int]
    POLICY_REVISION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PAUSE_REASON_FIELD_NUMBER: _ClassVar[int]
    LAST_BACKUP_AT_FIELD_NUMBER: _ClassVar[int]
    NEXT_BACKUP_AT_FIELD_NUMBER: _ClassVar[int]
    CURRENT_FIELD_NUMBER: _ClassVar[int]
    OUTBOX_SIZE_FIELD_NUMBER: _ClassVar[int]
    at: _timestamp_pb2.Timestamp
    policy_revision: str
    state: str
    pause_reason: str
    last_backup_at: _timestamp_pb2.Timestamp
    next_backup_at: _timestamp_pb2.Timestamp
    current: JobProgress
    outbox_size: int
    def __init__(self, at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., policy_revision: _Optional[str] = ..., state: _Optional[str] = ..., pause_reason: _Optional[str] = ..., last_backup_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., next_backup_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., current: _Optional[_Union[JobProgress, _Mapping]] = ..., outbox_size: _Optional[int] = ...) -> None: ...

class CommandAck(_message.Message):
    __slots__ = ("command_id", "accepted", "reason")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    accepted: bool
    reason: str
    def __init__(self, command_id: _Optional[str] = ..., accepted: _Optional[bool] = ..., reason: _Optional[str] = ...) -> None: ...

class JobProgress(_message.Message):
    __slots__ = ("job_id", "command_id", "kind", "files_done", "bytes_done", "bytes_total", "percent", "files_total", "current_path", "started_at", "trigger")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    FILES_DONE_FIELD_NUMBER: _ClassVar[int]
    BYTES_DONE_FIELD_NUMBER: _ClassVar[int]
    BYTES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    FILES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    CURRENT_PATH_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    command_id: str
    kind: str
    files_done: int
    bytes_done: int
    bytes_total: int
    percent: float
    files_total: int
    current_path: str
    started_at: _timestamp_pb2.Timestamp
    trigger: str
    def __init__(self, job_id: _Optional[str] = ..., command_id: _Optional[str] = ..., kind: _Optional[str] = ..., files_done: _Optional[int] = ..., bytes_done: _Optional[int] = ..., bytes_total: _Optional[int] = ..., percent: _Optional[float] = ..., files_total: _Optional[int] = ..., current_path: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., trigger: _Optional[str] = ...) -> None: ...

class JobResult(_message.Message):
    __slots__ = ("job_id", "command_id", "kind", "state", "started_at", "finished_at", "snapshot_id", "error", "warnings", "stats_json", "policy_revision", "trigger", "files_total", "bytes_added")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    WARNINGS_FIELD_NUMBER: _ClassVar[int]
    STATS_JSON_FIELD_NUMBER: _ClassVar[int]
    POLICY_REVISION_FIELD_NUMBER: _ClassVar[int]
    TRIGGER_FIELD_NUMBER: _ClassVar[int]
    FILES_TOTAL_FIELD_NUMBER: _ClassVar[int]
    BYTES_ADDED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    command_id: str
    kind: str
    state: str
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    snapshot_id: str
    error: str
    warnings: _containers.RepeatedScalarFieldContainer[str]
    stats_json: str
    policy_revision: str
    trigger: str
    files_total: int
    bytes_added: int
    def __init__(self, job_id: _Optional[str] = ..., command_id: _Optional[str] = ..., kind: _Optional[str] = ..., state: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., snapshot_id: _Optional[str] = ..., error: _Optional[str] = ..., warnings: _Optional[_Iterable[str]] = ..., stats_json: _Optional[str] = ..., policy_revision: _Optional[str] = ..., trigger: _Optional[str] = ..., files_total: _Optional[int] = ..., bytes_added: _Optional[int] = ...) -> None: ...

class Report(_message.Message):
    __slots__ = ("idempotency_key", "progress", "result", "snapshot", "self_restore")
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_FIELD_NUMBER: _ClassVar[int]
    SELF_RESTORE_FIELD_NUMBER: _ClassVar[int]
    idempotency_key: str
    progress: JobProgress
    result: JobResult
    snapshot: SnapshotInfo
    self_restore: SelfRestore
    def __init__(self, idempotency_key: _Optional[str] = ..., progress: _Optional[_Union[JobProgress, _Mapping]] = ..., result: _Optional[_Union[JobResult, _Mapping]] = ..., snapshot: _Optional[_Union[SnapshotInfo, _Mapping]] = ..., self_restore: _Optional[_Union[SelfRestore, _Mapping]] = ...) -> None: ...

class SelfRestore(_message.Message):
    __slots__ = ("os_user", "uid", "snapshot_id", "paths", "target", "state", "error", "files", "bytes", "at")
    OS_USER_FIELD_NUMBER: _ClassVar[int]
    UID_FIELD_NUMBER: _ClassVar[int]
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    os_user: str
    uid: int
    snapshot_id: str
    paths: _containers.RepeatedScalarFieldContainer[str]
    target: str
    state: str
    error: str
    files: int
    bytes: int
    at: _timestamp_pb2.Timestamp
    def __init__(self, os_user: _Optional[str] = ..., uid: _Optional[int] = ..., snapshot_id: _Optional[str] = ..., paths: _Optional[_Iterable[str]] = ..., target: _Optional[str] = ..., state: _Optional[str] = ..., error: _Optional[str] = ..., files: _Optional[int] = ..., bytes: _Optional[int] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SnapshotInfo(_message.Message):
    __slots__ = ("snapshot_id", "time", "paths", "tags", "files", "bytes")
    SNAPSHOT_ID_FIELD_NUMBER: _ClassVar[int]
    TIME_FIELD_NUMBER: _ClassVar[int]
    PATHS_FIELD_NUMBER: _ClassVar[int]
    TAGS_FIELD_NUMBER: _ClassVar[int]
    FILES_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    snapshot_id: str
    time: _timestamp_pb2.Timestamp
    paths: _containers.RepeatedScalarFieldContainer[str]
    tags: _containers.RepeatedScalarFieldContainer[str]
    files: int
    bytes: int
    def __init__(self, snapshot_id: _Optional[str] = ..., time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., paths: _Optional[_Iterable[str]] = ..., tags: _Optional[_Iterable[str]] = ..., files: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class ReportBatch(_message.Message):
    __slots__ = ("reports",)
    REPORTS_FIELD_NUMBER: _ClassVar[int]
    reports: _containers.RepeatedCompositeFieldContainer[Report]
    def __init__(self, reports: _Optional[_Iterable[_Union[Report, _Mapping]]] = ...) -> None: ...

class ReportAck(_message.Message):
    __slots__ = ("accepted_keys",)
    ACCEPTED_KEYS_FIELD_NUMBER: _ClassVar[int]
    accepted_keys: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, accepted_keys: _Optional[_Iterable[str]] = ...) -> None: ...

class AgentMessage(_message.Message):
    __slots__ = ("hello", "heartbeat", "ack", "report")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    ACK_FIELD_NUMBER: _ClassVar[int]
    REPORT_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    heartbeat: Heartbeat
    ack: CommandAck
    report: Report
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., ack: _Optional[_Union[CommandAck, _Mapping]] = ..., report: _Optional[_Union[Report, _Mapping]] = ...) -> None: ...

class ApplyPolicy(_message.Message):
    __slots__ = ("revision", "policy_json")
    REVISION_FIELD_NUMBER: _ClassVar[int]
    POLICY_JSON_FIELD_NUMBER: _ClassVar[int]
    revision: str
    policy_json: str
    def __init__(self, revision: _Optional[str] = ..., policy_json: _Optional[str] = ...) -> None: ...

class RunJob(_message.Message):
    __slots__ = ("kind", "args_json")
    KIND_FIELD_NUMBER: _ClassVar[int]
    ARGS_JSON_FIELD_NUMBER: _ClassVar[int]
    kind: str
    args_json: str
    def __init__(self, kind: _Optional[str] = ..., args_json: _Optional[str] = ...) -> None: ...

class Cancel(_message.Message):
    __slots__ = ("job_command_id",)
    JOB_COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    job_command_id: str
    def __init__(self, job_command_id: _Optional[str] = ...) -> None: ...

class Ping(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ConsoleMessage(_message.Message):
    __slots__ = ("command_id", "apply_policy", "run_job", "cancel", "ping", "welcome", "report_ack", "expires_at")
    COMMAND_ID_FIELD_NUMBER: _ClassVar[int]
    APPLY_POLICY_FIELD_NUMBER: _ClassVar[int]
    RUN_JOB_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    PING_FIELD_NUMBER: _ClassVar[int]
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    REPORT_ACK_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    command_id: str
    apply_policy: ApplyPolicy
    run_job: RunJob
    cancel: Cancel
    ping: Ping
    welcome: Welcome
    report_ack: ReportAck
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, command_id: _Optional[str] = ..., apply_policy: _Optional[_Union[ApplyPolicy, _Mapping]] = ..., run_job: _Optional[_Union[RunJob, _Mapping]] = ..., cancel: _Optional[_Union[Cancel, _Mapping]] = ..., ping: _Optional[_Union[Ping, _Mapping]] = ..., welcome: _Optional[_Union[Welcome, _Mapping]] = ..., report_ack: _Optional[_Union[ReportAck, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StorageGrantRequest(_message.Message):
    __slots__ = ("object_keys", "method", "list_prefix", "continuation_token", "restore_access")
    OBJECT_KEYS_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    LIST_PREFIX_FIELD_NUMBER: _ClassVar[int]
    CONTINUATION_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RESTORE_ACCESS_FIELD_NUMBER: _ClassVar[int]
    object_keys: _containers.RepeatedScalarFieldContainer[str]
    method: str
    list_prefix: str
    continuation_token: str
    restore_access: int
    def __init__(self, object_keys: _Optional[_Iterable[str]] = ..., method: _Optional[str] = ..., list_prefix: _Optional[str] = ..., continuation_token: _Optional[str] = ..., restore_access: _Optional[int] = ...) -> None: ...

class PresignedUrl(_message.Message):
    __slots__ = ("object_key", "url", "headers")
    class HeadersEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    OBJECT_KEY_FIELD_NUMBER: _ClassVar[int]
    URL_FIELD_NUMBER: _ClassVar[int]
    HEADERS_FIELD_NUMBER: _ClassVar[int]
    object_key: str
    url: str
    headers: _containers.ScalarMap[str, str]
    def __init__(self, object_key: _Optional[str] = ..., url: _Optional[str] = ..., headers: _Optional[_Mapping[str, str]] = ...) -> None: ...

class StorageGrant(_message.Message):
    __slots__ = ("urls", "expires_at")
    URLS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    urls: _containers.RepeatedCompositeFieldContainer[PresignedUrl]
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, urls: _Optional[_Iterable[_Union[PresignedUrl, _Mapping]]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SpoolLeaseRequest(_message.Message):
    __slots__ = ("slots",)
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    slots: int
    def __init__(self, slots: _Optional[int] = ...) -> None: ...

class SpoolSlot(_message.Message):
    __slots__ = ("id", "object", "target")
    ID_FIELD_NUMBER: _ClassVar[int]
    OBJECT_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    id: str
    object: PresignedUrl
    target: PresignedUrl
    def __init__(self, id: _Optional[str] = ..., object: _Optional[_Union[PresignedUrl, _Mapping]] = ..., target: _Optional[_Union[PresignedUrl, _Mapping]] = ...) -> None: ...

class SpoolLease(_message.Message):
    __slots__ = ("slots", "issued_at", "expires_at")
    SLOTS_FIELD_NUMBER: _ClassVar[int]
    ISSUED_AT_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    slots: _containers.RepeatedCompositeFieldContainer[SpoolSlot]
    issued_at: _timestamp_pb2.Timestamp
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, slots: _Optional[_Iterable[_Union[SpoolSlot, _Mapping]]] = ..., issued_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class RenewRequest(_message.Message):
    __slots__ = ("csr_pem",)
    CSR_PEM_FIELD_NUMBER: _ClassVar[int]
    csr_pem: bytes
    def __init__(self, csr_pem: _Optional[bytes] = ...) -> None: ...

class RenewResponse(_message.Message):
    __slots__ = ("certificate_pem", "ca_certificate_pem")
    CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    CA_CERTIFICATE_PEM_FIELD_NUMBER: _ClassVar[int]
    certificate_pem: bytes
    ca_certificate_pem: bytes
    def __init__(self, certificate_pem: _Optional[bytes] = ..., ca_certificate_pem: _Optional[bytes] = ...) -> None: ...
