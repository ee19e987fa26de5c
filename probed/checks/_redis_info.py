"""What the ``redis`` check type knows about INFO fields: their names, and how to show values.

- :data:`NUMERIC_FIELDS`: numeric fields of ``INFO`` (default sections) in Redis 6.0 to 7.4, so a
  misspelt name in ``info_fields`` is a validation error with a "did you mean" hint rather than a
  check that fails at run time. Servers and modules that report other fields are allowed with
  the ``allow_unknown_info_fields`` option.
- :data:`TEXT_FIELDS`: well-known fields whose values are text (a role, a version), which
  ``info_fields`` cannot watch.
- :func:`format_info_value`: one way to print a value in messages: exact integers, and sizes
  with a binary unit beside the byte count (``1016656 (992.8 KiB)``), never ``1.01666e+06``.
"""

from __future__ import annotations

from typing import Final

from probed.options import format_size

__all__ = ["NUMERIC_FIELDS", "TEXT_FIELDS", "format_info_value", "is_size_field"]

NUMERIC_FIELDS: Final = frozenset(
    [
        "redis_git_sha1",
        "redis_git_dirty",
        "arch_bits",
        "process_id",
        "tcp_port",
        "server_time_usec",
        "uptime_in_seconds",
        "uptime_in_days",
        "hz",
        "configured_hz",
        "lru_clock",
        "io_threads_active",
        "connected_clients",
        "cluster_connections",
        "maxclients",
        "client_recent_max_input_buffer",
        "client_recent_max_output_buffer",
        "client_longest_output_list",
        "client_biggest_input_buf",
        "blocked_clients",
        "tracking_clients",
        "pubsub_clients",
        "watching_clients",
        "clients_in_timeout_table",
        "total_watched_keys",
        "total_blocking_keys",
        "total_blocking_keys_on_nokey",
        "used_memory",
        "used_memory_rss",
        "used_memory_peak",
        "used_memory_peak_time",
        "used_memory_overhead",
        "used_memory_startup",
        "used_memory_dataset",
        "total_system_memory",
        "used_memory_lua",
        "used_memory_vm_eval",
        "used_memory_scripts_eval",
        "number_of_cached_scripts",
        "number_of_functions",
        "number_of_libraries",
        "used_memory_vm_functions",
        "used_memory_vm_total",
        "used_memory_functions",
        "used_memory_scripts",
        "maxmemory",
        "allocator_allocated",
        "allocator_active",
        "allocator_resident",
        "allocator_muzzy",
        "allocator_frag_ratio",
        "allocator_frag_bytes",
        "allocator_rss_ratio",
        "allocator_rss_bytes",
        "rss_overhead_ratio",
        "rss_overhead_bytes",
        "mem_fragmentation_ratio",
        "mem_fragmentation_bytes",
        "mem_not_counted_for_evict",
        "mem_replication_backlog",
        "mem_total_replication_buffers",
        "mem_clients_slaves",
        "mem_clients_normal",
        "mem_cluster_links",
        "mem_aof_buffer",
        "mem_overhead_db_hashtable_rehashing",
        "active_defrag_running",
        "lazyfree_pending_objects",
        "lazyfreed_objects",
        "loading",
        "async_loading",
        "current_cow_peak",
        "current_cow_size",
        "current_cow_size_age",
        "current_fork_perc",
        "current_save_keys_processed",
        "current_save_keys_total",
        "rdb_changes_since_last_save",
        "rdb_bgsave_in_progress",
        "rdb_last_save_time",
        "rdb_last_bgsave_time_sec",
        "rdb_current_bgsave_time_sec",
        "rdb_saves",
        "rdb_last_cow_size",
        "rdb_last_load_keys_expired",
        "rdb_last_load_keys_loaded",
        "aof_enabled",
        "aof_rewrite_in_progress",
        "aof_rewrite_scheduled",
        "aof_rewrites",
        "aof_rewrites_consecutive_failures",
        "aof_last_rewrite_time_sec",
        "aof_current_rewrite_time_sec",
        "aof_last_cow_size",
        "aof_current_size",
        "aof_base_size",
        "aof_pending_rewrite",
        "aof_buffer_length",
        "aof_rewrite_buffer_length",
        "aof_pending_bio_fsync",
        "aof_delayed_fsync",
        "module_fork_in_progress",
        "module_fork_last_cow_size",
        "loading_start_time",
        "loading_total_bytes",
        "loading_rdb_used_mem",
        "loading_loaded_bytes",
        "loading_loaded_perc",
        "loading_eta_seconds",
        "total_connections_received",
        "total_commands_processed",
        "instantaneous_ops_per_sec",
        "total_net_input_bytes",
        "total_net_output_bytes",
        "total_net_repl_input_bytes",
        "total_net_repl_output_bytes",
        "instantaneous_input_kbps",
        "instantaneous_output_kbps",
        "instantaneous_input_repl_kbps",
        "instantaneous_output_repl_kbps",
        "rejected_connections",
        "sync_full",
        "sync_partial_ok",
        "sync_partial_err",
        "expired_keys",
        "expired_subkeys",
        "expired_stale_perc",
        "expired_time_cap_reached_count",
        "expire_cycle_cpu_milliseconds",
        "evicted_keys",
        "evicted_clients",
        "evicted_scripts",
        "total_eviction_exceeded_time",
        "current_eviction_exceeded_time",
        "keyspace_hits",
        "keyspace_misses",
        "pubsub_channels",
        "pubsub_patterns",
        "pubsubshard_channels",
        "latest_fork_usec",
        "total_forks",
        "migrate_cached_sockets",
        "slave_expires_tracked_keys",
        "active_defrag_hits",
        "active_defrag_misses",
        "active_defrag_key_hits",
        "active_defrag_key_misses",
        "total_active_defrag_time",
        "current_active_defrag_time",
        "tracking_total_keys",
        "tracking_total_items",
        "tracking_total_prefixes",
        "unexpected_error_replies",
        "total_error_replies",
        "dump_payload_sanitizations",
        "total_reads_processed",
        "total_writes_processed",
        "io_threaded_reads_processed",
        "io_threaded_writes_processed",
        "client_query_buffer_limit_disconnections",
        "client_output_buffer_limit_disconnections",
        "reply_buffer_shrinks",
        "reply_buffer_expands",
        "eventloop_cycles",
        "eventloop_duration_sum",
        "eventloop_duration_cmd_sum",
        "instantaneous_eventloop_cycles_per_sec",
        "instantaneous_eventloop_duration_usec",
        "acl_access_denied_auth",
        "acl_access_denied_cmd",
        "acl_access_denied_key",
        "acl_access_denied_channel",
        "master_port",
        "master_last_io_seconds_ago",
        "master_sync_in_progress",
        "slave_read_repl_offset",
        "slave_repl_offset",
        "slave_priority",
        "slave_read_only",
        "replica_announced",
        "master_sync_total_bytes",
        "master_sync_read_bytes",
        "master_sync_left_bytes",
        "master_sync_perc",
        "master_sync_last_io_seconds_ago",
        "master_link_down_since_seconds",
        "min_slaves_good_slaves",
        "connected_slaves",
        "master_replid2",
        "master_repl_offset",
        "second_repl_offset",
        "repl_backlog_active",
        "repl_backlog_size",
        "repl_backlog_first_byte_offset",
        "repl_backlog_histlen",
        "used_cpu_sys",
        "used_cpu_user",
        "used_cpu_sys_children",
        "used_cpu_user_children",
        "used_cpu_sys_main_thread",
        "used_cpu_user_main_thread",
        "cluster_enabled",
        "sentinel_masters",
        "sentinel_tilt",
        "sentinel_tilt_since_seconds",
        "sentinel_running_scripts",
        "sentinel_scripts_queue_length",
        "sentinel_simulate_failure_flags",
    ]
)
"""Numeric fields Redis 6.0 to 7.4 report in ``INFO`` (its default sections)."""

TEXT_FIELDS: Final = frozenset(
    [
        "redis_version",
        "redis_build_id",
        "redis_mode",
        "os",
        "multiplexing_api",
        "atomicvar_api",
        "gcc_version",
        "run_id",
        "executable",
        "config_file",
        "process_supervised",
        "monotonic_clock",
        "mem_allocator",
        "maxmemory_policy",
        "used_memory_peak_perc",
        "used_memory_dataset_perc",
        "rdb_last_bgsave_status",
        "aof_last_bgrewrite_status",
        "aof_last_write_status",
        "role",
        "master_host",
        "master_link_status",
        "master_failover_state",
        "master_replid",
    ]
)
"""Well-known INFO fields whose values are text, not numbers."""

_SIZE_SUFFIXES: Final = ("_bytes", "_size", "_buffer", "_buf", "_mem")
_NOT_SIZE: Final = ("ratio", "_perc", "_human", "_time", "_kbps")
_SIZE_NAMES: Final = frozenset({"aof_buffer_length", "current_cow_peak", "repl_backlog_histlen"})


def is_size_field(name: str) -> bool:
    """Whether an INFO field counts bytes (``used_memory``, ``mem_*``, ``*_bytes``...)."""
    if any(part in name for part in _NOT_SIZE):
        return False
    return (
        "memory" in name
        or name.startswith(("mem_", "allocator_"))
        or name.endswith(_SIZE_SUFFIXES)
        or name in _SIZE_NAMES
    )


def format_info_value(name: str, value: float) -> str:
    """``value`` of INFO field ``name`` for a message.

    Whole numbers are exact (``1016656``, not ``1.01666e+06``); fractions keep up to four
    decimals; byte counts of 1 KiB or more add a binary unit: ``1016656 (992.8 KiB)``.
    """
    whole = float(value).is_integer()
    exact = str(int(value)) if whole else f"{value:.4f}".rstrip("0").rstrip(".")
    if is_size_field(name) and abs(value) >= 1024:
        return f"{exact} ({format_size(value)})"
    return exact
